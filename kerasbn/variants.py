"""Model variants as data: where BatchNorm and Dropout go, and with which rates.

A variant never copies a model; :func:`kerasbn.build_model` reads these fields. New
variants are added with :func:`register_variant` and are then picked up by the CLI and
by the tests, which are parametrized over :func:`list_variants`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kerasbn.registry import Registry

__all__ = [
    "DEFAULT_VARIANTS",
    "Variant",
    "get_variant",
    "list_variants",
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

    def __post_init__(self) -> None:
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
        """The fields as recorded in run folders; ``ghost_batch`` (added later) only when
        set, so folders recorded before it still resume."""
        fields = asdict(self)
        if fields["ghost_batch"] is None:
            del fields["ghost_batch"]
        return fields

    @property
    def uses_dropout(self) -> bool:
        return self.block_dropout > 0 or self.head_dropout > 0


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
    """Parse a comma list such as ``"base,bn+dropout"`` or ``"all"`` (duplicates removed)."""
    if spec.strip().lower() == "all":
        return list(VARIANTS.values())
    names = [part.strip() for part in spec.split(",") if part.strip()]
    if not names:
        raise ValueError(
            f"No variant given. Valid variants are: {', '.join(VARIANTS)} or 'all'. "
            f"Received: {spec!r}"
        )
    variants = [get_variant(name) for name in names]
    return list({v.name: v for v in variants}.values())


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
