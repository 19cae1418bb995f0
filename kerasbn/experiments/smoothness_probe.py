"""The smoothness probe of the smoothness experiment (Santurkar et al. 2018, figure 4):
the training loss and its gradient at weights that are never assigned, and the loss
range, gradient change and beta-smoothness along the gradient, on three grids of steps
(rate multiples, absolute distances, and steps relative to each tensor's norm)."""

from __future__ import annotations

import keras
import numpy as np

__all__ = ["loss_and_gradient", "probe"]


def loss_and_gradient(model: keras.Model, weights: list, images, labels):
    """The training loss (BN on batch statistics, random layers active as in training)
    of ``model`` with its trainable weights set to ``weights`` (arrays in the order of
    ``model.trainable_variables``), and its gradient as NumPy arrays. Nothing is
    assigned: the model's own weights and BN statistics stay as they are."""
    non_trainable = [v.value for v in model.non_trainable_variables]
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    def loss_of(trainable):
        outputs, _ = model.stateless_call(trainable, non_trainable, images, training=True)
        return loss_fn(labels, outputs)

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        trainable = [tf.convert_to_tensor(w) for w in weights]
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            loss = loss_of(trainable)
        grads = tape.gradient(loss, trainable)
    elif backend == "jax":
        import jax

        loss, grads = jax.value_and_grad(loss_of)([jax.numpy.asarray(w) for w in weights])
    else:
        raise ValueError(
            "the smoothness probe computes gradients on the tensorflow or jax backend; set "
            f"KERAS_BACKEND to one of them. Received: {backend!r}"
        )
    return float(loss), [np.asarray(g, dtype=np.float64) for g in grads]


def _norm(arrays) -> float:
    return float(np.sqrt(sum(np.sum(np.square(a)) for a in arrays)))


def _step(weights, direction, size: float) -> list:
    """``weights`` moved by ``size`` times ``direction`` (one array per tensor), downhill,
    in each tensor's own dtype."""
    return [(w - size * d).astype(w.dtype) for w, d in zip(weights, direction, strict=True)]


def _measures(model, images, labels, loss, grad, moves, scale=None) -> dict:
    """Loss range, gradient change and beta-smoothness over ``moves`` (pairs of a step
    size and the moved weights); gradients multiplied tensor by tensor by ``scale``
    where given (the scale-invariant variant)."""

    def scaled(g):
        return g if scale is None else [a * c for a, c in zip(g, scale, strict=True)]

    reference = scaled(grad)
    losses, changes, betas = [loss], [], []
    for size, moved in moves:
        moved_loss, moved_grad = loss_and_gradient(model, moved, images, labels)
        change = _norm([a - b for a, b in zip(reference, scaled(moved_grad), strict=True)])
        losses.append(moved_loss)
        changes.append(change)
        betas.append(change / size if size > 0 else np.nan)
    finite = np.isfinite(losses).all() and np.isfinite(changes).all()
    return {
        "loss_min": float(np.min(losses)) if finite else np.nan,
        "loss_max": float(np.max(losses)) if finite else np.nan,
        "loss_range": float(np.ptp(losses)) if finite else np.nan,
        "grad_change_min": float(np.min(changes)) if finite else np.nan,
        "grad_change_max": float(np.max(changes)) if finite else np.nan,
        "beta_smoothness": float(np.nanmax(betas)) if finite and changes else np.nan,
        "grad_changes": [float(c) for c in changes],
    }


def probe(
    model: keras.Model,
    images,
    labels,
    learning_rate: float,
    multiples,
    distances=(),
    relative=(),
) -> dict:
    """The three smoothness measures at the model's current weights on one batch: along
    the gradient at ``multiples`` of the rate, at absolute ``distances`` (``_abs``
    columns) and at ``relative`` steps of each tensor's norm (``_rel``)."""
    weights = [np.asarray(v.numpy()) for v in model.trainable_variables]
    loss, grad = loss_and_gradient(model, weights, images, labels)
    grad_norm = _norm(grad)
    row = {"loss": loss, "grad_norm": grad_norm}
    steps = [
        (m * learning_rate * grad_norm, _step(weights, grad, m * learning_rate)) for m in multiples
    ]
    row.update(_measures(model, images, labels, loss, grad, steps))
    if distances and grad_norm > 0:
        unit = [g / grad_norm for g in grad]
        along = [(d, _step(weights, unit, d)) for d in distances]
        found = _measures(model, images, labels, loss, grad, along)
        row.update({f"{k}_abs": v for k, v in found.items()})
    if relative:
        sizes = [_norm([w]) for w in weights]
        # each tensor's own unit gradient, scaled by its norm: a step of r moves it r x ||w||
        scaled = [
            s * g / n if (n := _norm([g])) > 0 else np.zeros_like(g)
            for s, g in zip(sizes, grad, strict=True)
        ]
        moves = [(r, _step(weights, scaled, r)) for r in relative]
        found = _measures(model, images, labels, loss, grad, moves, scale=sizes)
        row.update({f"{k}_rel": v for k, v in found.items()})
    return row
