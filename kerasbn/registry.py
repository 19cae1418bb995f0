"""Named registries (data sets, presets, variants, experiments) and their one error shape.

Every lookup by name in kerasbn fails the same way, as Keras applications do: the message
lists the valid choices and ends with ``Received: ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar

__all__ = ["Registry", "check_choice", "unknown_name"]

T = TypeVar("T")


def unknown_name(kind: str, valid: Iterable, received, plural: str | None = None) -> ValueError:
    """``ValueError("Unknown <kind>. Valid <plural> are: a, b. Received: 'x'")``."""
    names = ", ".join(str(name) for name in valid)
    return ValueError(
        f"Unknown {kind}. Valid {plural or kind + 's'} are: {names}. Received: {received!r}"
    )


def check_choice(value, valid: Iterable, kind: str, plural: str | None = None):
    """``value`` if it is one of ``valid``, else :func:`unknown_name`'s error."""
    valid = tuple(valid)
    if value not in valid:
        raise unknown_name(kind, valid, value, plural)
    return value


class Registry(Mapping[str, T], Generic[T]):
    """An ordered name -> item table with timm-style ``names()`` / ``lookup(name)``.

    ``normalize`` maps what a user types to the stored key (e.g. ``"Fashion-MNIST"`` to
    ``"fashion_mnist"``); it is applied once, here, and nowhere else.
    """

    def __init__(
        self, kind: str, plural: str | None = None, normalize: Callable[[str], str] = str.strip
    ) -> None:
        self.kind, self.plural, self.normalize = kind, plural, normalize
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T, *, overwrite: bool = False) -> T:
        if name in self._items and not overwrite:
            raise ValueError(
                f"A {self.kind} named {name!r} is already registered; pass overwrite=True to "
                f"replace it. Received: {item!r}"
            )
        self._items[name] = item
        return item

    def unregister(self, name: str) -> T:
        """Remove and return ``name`` (for tests and plug-ins that register temporarily)."""
        return self._items.pop(self.key(name))

    def names(self) -> list[str]:
        return list(self._items)

    def key(self, name: str) -> str:
        """The stored key for ``name``; the error lists the valid names if there is none."""
        key = self.normalize(name) if isinstance(name, str) else name
        if key not in self._items:
            raise unknown_name(self.kind, self._items, name, self.plural)
        return key

    def lookup(self, name: str) -> T:
        """The item registered as ``name`` (after ``normalize``)."""
        return self._items[self.key(name)]

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
