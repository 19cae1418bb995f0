"""Model variants as data: where BatchNorm and Dropout go, and with which rates.

A variant never copies a model; :func:`kerasbn.build_model` reads these fields. New
variants are added with :func:`register_variant` and are then picked up by the CLI and
by the tests, which are parametrized over :func:`list_variants`.

On the command line a variant can also be written as a registered one plus changes
(:func:`parse_variant`): ``bn(momentum=0.9)``, ``dropout(block=0.2,head=0.5)``,
``bn@post`` (BN after the ReLU instead of before it), ``bn+dropout@post(head=0.3)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace

from kerasbn.registry import Registry, unknown_name

__all__ = [
    "DEFAULT_VARIANTS",
    "Variant",
    "get_variant",
    "list_variants",
    "parse_variant",
    "parse_variants",
    "register_variant",
    "unregister_variant",
]

# What a comparison trains when no variant is named (CLI and compare() alike).
DEFAULT_VARIANTS = "base,bn,bn+dropout"


@dataclass(frozen=True)
class Variant:
    """Where BN and Dropout go in the shared CNN template.

    Attributes:
        name: registry key, e.g. ``"bn+dropout"``.
        description: one line for tables and ``--help``.
        batch_norm: Conv -> BN -> ReLU in every conv layer and Dense -> BN -> ReLU in
            the head; the preceding conv / dense then has no bias (BN's beta replaces it).
        block_dropout: Dropout rate after each pooling stage (0 = no Dropout layer).
        head_dropout: Dropout rate before the classifier (0 = no Dropout layer).
        bn_momentum: BatchNormalization moving-average momentum.
        bn_epsilon: BatchNormalization epsilon.
        sync_bn: compute BN batch statistics over the global batch of all replicas
            (``BatchNormalization(synchronized=True)`` on TensorFlow; JAX's data-parallel
            path computes them globally anyway). Matters when per-replica batches are
            small; ``--sync-bn`` sets it on every variant of a comparison.
        ghost_batch: while training, BN normalizes each run of this many examples of a
            batch by its own statistics (:class:`~kerasbn.layers.GhostBatchNormalization`);
            ``None``: the whole batch. Inference is unchanged.
        bn_placement: ``"pre"``: conv -> BN -> ReLU (Ioffe & Szegedy, 2015); ``"post"``:
            conv -> ReLU -> BN, the placement argued over since (the conv keeps its bias
            there, as BN's beta no longer replaces it).
        norm: which normalization ``batch_norm`` puts in those places: ``"batch"``
            (BatchNormalization), ``"group"`` (GroupNormalization, 32 groups or fewer
            where a layer has fewer channels; Wu & He, 2018) or ``"layer"``
            (GroupNormalization with one group: Layer Normalization over height, width
            and channels with a scale and shift per channel, Wu & He's definition). The
            last two use no batch statistics: no moving averages, no train/test gap.
    """

    name: str
    description: str
    batch_norm: bool = False
    block_dropout: float = 0.0
    head_dropout: float = 0.0
    bn_momentum: float = 0.99
    bn_epsilon: float = 1e-3
    sync_bn: bool = False
    ghost_batch: int | None = None
    bn_placement: str = "pre"
    norm: str = "batch"

    def __post_init__(self) -> None:
        if self.bn_placement not in BN_PLACEMENTS:
            raise unknown_name("BN placement", BN_PLACEMENTS, self.bn_placement)
        if self.norm not in NORMS:
            raise unknown_name("normalization", NORMS, self.norm)
        for field_name in ("block_dropout", "head_dropout"):
            rate = getattr(self, field_name)
            if not 0.0 <= rate < 1.0:
                raise ValueError(
                    f"{field_name} must be in [0, 1) for variant {self.name!r}. Received: {rate}"
                )
        if not 0.0 < self.bn_momentum < 1.0:
            raise ValueError(f"bn_momentum must be in (0, 1). Received: {self.bn_momentum}")
        if self.ghost_batch is not None and (
            not isinstance(self.ghost_batch, int) or self.ghost_batch < 1
        ):
            raise ValueError(
                "ghost_batch must be a positive whole number or None. "
                f"Received: {self.ghost_batch!r}"
            )

    def to_dict(self) -> dict:
        """The fields as recorded in run folders; ``ghost_batch`` and ``bn_placement``
        (added later) only when set, so folders recorded before them still resume."""
        record = asdict(self)
        # Fields added later are recorded only when set, so older folders still resume.
        if record["ghost_batch"] is None:
            del record["ghost_batch"]
        if record["bn_placement"] == "pre":
            del record["bn_placement"]
        if record["norm"] == "batch":
            del record["norm"]
        return record

    @property
    def uses_dropout(self) -> bool:
        return self.block_dropout > 0 or self.head_dropout > 0

    @property
    def uses_bn(self) -> bool:
        """Batch Normalization itself (batch statistics, moving averages), not GN or LN:
        what precise BN, variance shift, Ghost and synchronized BN apply to."""
        return self.batch_norm and self.norm == "batch"


VARIANTS: Registry[Variant] = Registry("variant", normalize=lambda name: name.strip().lower())


def register_variant(variant: Variant, *, overwrite: bool = False) -> Variant:
    """Add a variant to the registry (``overwrite=True`` to replace one of the same name)."""
    return VARIANTS.register(variant.name, variant, overwrite=overwrite)


def unregister_variant(name: str) -> Variant:
    """Remove a registered variant (e.g. one a test or a notebook added for a while)."""
    return VARIANTS.unregister(name)


def list_variants() -> list[str]:
    """Registered variant names, in registration order."""
    return VARIANTS.names()


def get_variant(name: str | Variant) -> Variant:
    """The registered :class:`Variant` called ``name`` (a Variant passes through)."""
    return name if isinstance(name, Variant) else VARIANTS.lookup(name)


def parse_variants(spec: str) -> list[Variant]:
    """Parse a comma list such as ``"base,bn+dropout"``, ``"all"`` (every variant but
    the normalization alternatives ``gn`` and ``ln``, which are named) or
    ``"base,bn(momentum=0.9),bn@post"`` (:func:`parse_variant`; duplicates removed)."""
    if spec.strip().lower() == "all":
        # The BN and Dropout family: the published "--variants all" commands name what
        # they trained, so later additions (gn, ln) are chosen by name.
        return [v for v in VARIANTS.values() if v.name not in NOT_IN_ALL]
    # Commas inside parentheses separate a variant's changes, not variants.
    parts = [part.strip() for part in re.split(r",(?![^()]*\))", spec) if part.strip()]
    if not parts:
        raise ValueError(
            f"No variant given. Valid variants are: {', '.join(VARIANTS)} or 'all'. "
            f"Received: {spec!r}"
        )
    variants = [parse_variant(part) for part in parts]
    return list({v.name: v for v in variants}.values())


BN_PLACEMENTS = ("pre", "post")
NORMS = ("batch", "group", "layer")
# Registered variants that "all" leaves out (see parse_variants).
NOT_IN_ALL = frozenset({"gn", "ln"})
# What a spec may change, by its short name (the field's own name works too).
SPEC_FIELDS = {
    "momentum": "bn_momentum",
    "epsilon": "bn_epsilon",
    "block": "block_dropout",
    "head": "head_dropout",
    "ghost": "ghost_batch",
}
_SPEC = re.compile(r"^(?P<name>[^@()]+?)(?:@(?P<placement>[^@()]*))?(?:\((?P<changes>[^()]*)\))?$")


def parse_variant(spec: str | Variant) -> Variant:
    """A registered variant, or one with changes: ``NAME[@PLACEMENT][(FIELD=VALUE,...)]``.

    ``FIELD`` is ``momentum``, ``epsilon`` (BN), ``block``, ``head`` (Dropout rates) or
    ``ghost`` (Ghost BN size), or the :class:`Variant` field's own name; ``@post`` puts BN
    after the ReLU. The new variant is named after its changes (``bn@post-momentum0.9``),
    so tables and file names tell it apart, and its description spells them out.
    """
    if isinstance(spec, Variant):
        return spec
    text = spec.strip()
    match = _SPEC.match(text)
    if match is None:
        raise ValueError(
            "A variant is NAME, NAME@post or NAME(field=value, ...), e.g. bn(momentum=0.9) "
            f"or dropout(block=0.2,head=0.5). Received: {spec!r}"
        )
    variant = get_variant(match["name"].strip())
    if match["placement"] is None and match["changes"] is None:
        return variant
    changes = _parse_changes(match["changes"] or "", spec)
    suffix = ""
    if match["placement"] is not None:
        placement = match["placement"].strip()
        if placement not in BN_PLACEMENTS:
            raise unknown_name("BN placement", BN_PLACEMENTS, placement)
        if not variant.batch_norm:
            raise ValueError(
                f"{variant.name!r} has no BatchNorm to place; use a BN variant, e.g. "
                f"bn@{placement}. Received: {spec!r}"
            )
        changes["bn_placement"] = placement
        suffix = f"@{placement}"
    short = {v: k for k, v in SPEC_FIELDS.items()}
    words = [f"{short.get(f, f)}={_text(v)}" for f, v in changes.items() if f != "bn_placement"]
    name = variant.name + suffix + "".join(
        f"-{short.get(f, f)}{_text(v)}" for f, v in changes.items() if f != "bn_placement"
    )
    description = variant.description + (
        "; BN after the ReLU" if suffix == "@post" else ""
    ) + (f"; {', '.join(words)}" if words else "")
    return replace(variant, name=name, description=description, **changes)


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _parse_changes(text: str, spec: str) -> dict:
    valid = {f.name for f in fields(Variant)} - {"name", "description", "bn_placement"}
    changes: dict = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = (piece.strip() for piece in item.partition("="))
        field_name = SPEC_FIELDS.get(key, key)
        if not sep or field_name not in valid:
            raise unknown_name(
                "variant field",
                [*SPEC_FIELDS, *sorted(valid - set(SPEC_FIELDS.values()))],
                key if sep else item,
            )
        changes[field_name] = _value(field_name, raw, spec)
    return changes


def _value(field_name: str, raw: str, spec: str):
    if field_name == "norm":
        if raw not in NORMS:
            raise unknown_name("normalization", NORMS, raw)
        return raw
    if field_name in ("batch_norm", "sync_bn"):
        if raw.lower() not in ("true", "false"):
            raise ValueError(f"{field_name} takes true or false. Received: {spec!r}")
        return raw.lower() == "true"
    try:
        number = int(raw) if field_name == "ghost_batch" else float(raw)
    except ValueError:
        kind = "a whole number" if field_name == "ghost_batch" else "a number"
        raise ValueError(f"{field_name} takes {kind}. Received: {spec!r}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"{field_name} takes a finite number. Received: {spec!r}")
    return number


# Rates: 0.1 after each pooling stage and 0.3 before the classifier. These nets are small
# and runs short (10-15 epochs): with 0.2 / 0.4 plus augmentation, CIFAR-10 bn+dropout
# still under-fitted at epoch 11 (train 73.6% < val 75.1%).
register_variant(Variant("base", "plain CNN: no BatchNorm, no Dropout"))
register_variant(
    Variant(
        "dropout",
        "Dropout after each pooling stage and before the classifier",
        block_dropout=0.1,
        head_dropout=0.3,
    )
)
register_variant(Variant("bn", "BatchNorm after every conv and dense layer", batch_norm=True))
register_variant(
    Variant(
        "bn+dropout",
        "BatchNorm after every conv/dense layer, plus Dropout",
        batch_norm=True,
        block_dropout=0.1,
        head_dropout=0.3,
    )
)
# Dropout only after the last BN layer (before the classifier): no BN layer sees a
# Dropout-scaled input, so the train/inference variance shift of Li et al. (2019)
# should vanish; the diagnostics compare it with bn+dropout.
register_variant(
    Variant(
        "bn+head-dropout",
        "BatchNorm after every conv/dense layer, Dropout only before the classifier",
        batch_norm=True,
        head_dropout=0.3,
    )
)
# Batch-independent baselines (Wu & He, 2018): the same places as BN, no batch statistics.
register_variant(
    Variant(
        "gn",
        "GroupNorm (32 groups) in place of every BatchNorm layer",
        batch_norm=True,
        norm="group",
    )
)
register_variant(
    Variant(
        "ln",
        "LayerNorm (over height, width and channels) in place of every BatchNorm layer",
        batch_norm=True,
        norm="layer",
    )
)
