"""numpy-reference: BatchNorm written out in NumPy, checked against Keras, then trained.

Forward (training mode): mean and biased variance over every axis but the last,
x_hat = (x - mean) / sqrt(var + eps), y = gamma * x_hat + beta. Backward: gradients for
the input, gamma and beta. Both are compared with Keras ``BatchNormalization`` in
training mode on the same float64 inputs and upstream gradient, for 2-D and 4-D inputs.

Then an MLP 64 -> 32 -> BN -> ReLU -> 10 is trained with the NumPy layer on
scikit-learn's digits (SGD lr 1e-3, batch 10, 100 epochs), next to the same model in
Keras, started from the same weights and fed the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasbn._io import write_text
from kerasbn._signals import raise_if_stopped
from kerasbn.data import load_dataset
from kerasbn.experiments._common import ExperimentResult, pyplot, save_figure, write_outputs
from kerasbn.training import StopOnSignal, compile_classifier

__all__ = ["QUICK", "Config", "bn_backward", "bn_forward", "gradient_check", "run"]


@dataclass(frozen=True)
class Config:
    epsilon: float = 1e-3  # Keras' default
    momentum: float = 0.99  # Keras' default for the moving statistics
    tolerance: float = 1e-5
    hidden_units: int = 32
    learning_rate: float = 1e-3
    batch_size: int = 10
    epochs: int = 100
    seed: int = 0


QUICK = {"epochs": 2}


# --------------------------------------------------------------------------- the layer


def bn_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float):
    """Training-mode batch norm over all axes but the last. Returns (y, cache)."""
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)  # biased, as the normalisation uses it
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mean) * inv_std
    return gamma * x_hat + beta, (x_hat, inv_std, gamma, axes, mean, var)


def bn_backward(dy: np.ndarray, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dgamma, dbeta) of batch norm, given dL/dy."""
    x_hat, inv_std, gamma, axes, _, _ = cache
    m = np.prod([dy.shape[a] for a in axes])
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * x_hat).sum(axis=axes)
    # d/dx of gamma * (x - mean) / sqrt(var + eps), with mean and var depending on x.
    dx = (gamma * inv_std / m) * (m * dy - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


def keras_bn_gradients(x, dy, gamma, beta, eps):
    """Keras BatchNormalization (training mode, float64): (y, dx, dgamma, dbeta)."""
    layer = keras.layers.BatchNormalization(epsilon=eps, dtype="float64")
    layer.build(x.shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt, training=True)
            loss = tf.reduce_sum(y * dy)
        dx, dgamma, dbeta = tape.gradient(loss, [xt, layer.gamma.value, layer.beta.value])
        return y.numpy(), dx.numpy(), dgamma.numpy(), dbeta.numpy()
    if backend == "jax":
        import jax

        def loss(x_, gamma_, beta_):
            out, _ = layer.stateless_call(
                [gamma_, beta_],
                [layer.moving_mean.value, layer.moving_variance.value],
                x_,
                training=True,
            )
            return (out * dy).sum(), out

        (_, y), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(
            x, layer.gamma.value, layer.beta.value
        )
        return tuple(np.asarray(a) for a in (y, *grads))
    raise RuntimeError(
        f"numpy-reference compares gradients on the tensorflow or jax backend. Received: "
        f"KERAS_BACKEND={backend}"
    )


def gradient_check(config: Config) -> pd.DataFrame:
    rng = np.random.default_rng(config.seed)
    rows = []
    for shape in ((16, 5), (4, 6, 6, 3)):
        x = rng.normal(2.0, 3.0, shape)
        dy = rng.normal(size=shape)
        gamma = rng.normal(1.0, 0.5, shape[-1])
        beta = rng.normal(0.0, 0.5, shape[-1])
        y_np, cache = bn_forward(x, gamma, beta, config.epsilon)
        grads_np = bn_backward(dy, cache)
        y_k, *grads_k = keras_bn_gradients(x, dy, gamma, beta, config.epsilon)
        for name, a, b in zip(
            ("output", "d input", "d gamma", "d beta"),
            (y_np, *grads_np),
            (y_k, *grads_k),
            strict=True,
        ):
            diff = float(np.max(np.abs(a - b)))
            rows.append(
                {
                    "input shape": str(shape),
                    "quantity": name,
                    "max abs diff": diff,
                    "agrees (<= tol)": diff <= config.tolerance,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the MLP


class NumpyMLP:
    """64 -> Dense(32, no bias) -> BN -> ReLU -> Dense(10) -> softmax, trained with SGD."""

    def __init__(self, w1, gamma, beta, w2, b2, eps: float, momentum: float):
        self.w1, self.gamma, self.beta, self.w2, self.b2 = (
            a.astype(np.float64) for a in (w1, gamma, beta, w2, b2)
        )
        self.eps, self.momentum = eps, momentum
        self.moving_mean = np.zeros_like(self.gamma)
        self.moving_var = np.ones_like(self.gamma)

    def forward(self, x, training: bool):
        h = x @ self.w1
        if training:
            z, cache = bn_forward(h, self.gamma, self.beta, self.eps)
            _, _, _, _, mean, var = cache
            # Keras updates the moving variance with the biased batch variance too.
            self.moving_mean = self.momentum * self.moving_mean + (1 - self.momentum) * mean
            self.moving_var = self.momentum * self.moving_var + (1 - self.momentum) * var
        else:
            z = (
                self.gamma * (h - self.moving_mean) / np.sqrt(self.moving_var + self.eps)
                + self.beta
            )
            cache = None
        a = np.maximum(z, 0)
        logits = a @ self.w2 + self.b2
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return probs, (x, cache, z, a)

    def train_step(self, x, y, lr: float) -> float:
        probs, (x, cache, z, a) = self.forward(x, training=True)
        n = len(x)
        loss = -np.mean(np.log(probs[np.arange(n), y] + 1e-12))
        dlogits = probs.copy()
        dlogits[np.arange(n), y] -= 1
        dlogits /= n
        dw2, db2 = a.T @ dlogits, dlogits.sum(axis=0)
        dz = (dlogits @ self.w2.T) * (z > 0)
        dh, dgamma, dbeta = bn_backward(dz, cache)
        dw1 = x.T @ dh
        for param, grad in (
            (self.w1, dw1),
            (self.gamma, dgamma),
            (self.beta, dbeta),
            (self.w2, dw2),
            (self.b2, db2),
        ):
            param -= lr * grad
        return float(loss)

    def evaluate(self, x, y) -> tuple[float, float]:
        probs, _ = self.forward(x, training=False)
        loss = -np.mean(np.log(probs[np.arange(len(x)), y] + 1e-12))
        return float(loss), float(np.mean(probs.argmax(1) == y))


def keras_mlp(config: Config) -> keras.Model:
    inputs = keras.Input((64,), name="pixels")
    x = keras.layers.Dense(config.hidden_units, use_bias=False, name="dense")(inputs)
    x = keras.layers.BatchNormalization(
        epsilon=config.epsilon, momentum=config.momentum, name="bn"
    )(x)
    x = keras.layers.ReLU(name="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs)


def train_both(config: Config) -> tuple[pd.DataFrame, dict]:
    data = load_dataset("digits")
    x_train = data.x_train.reshape(len(data.x_train), -1).astype(np.float64) / 255.0
    x_test = data.x_test.reshape(len(data.x_test), -1).astype(np.float64) / 255.0
    y_train, y_test = data.y_train, data.y_test

    keras.utils.set_random_seed(config.seed)
    model = keras_mlp(config)
    compile_classifier(model, keras.optimizers.SGD(config.learning_rate))
    w1 = model.get_layer("dense").get_weights()[0]
    gamma, beta, _, _ = model.get_layer("bn").get_weights()
    w2, b2 = model.get_layer("predictions").get_weights()
    reference = NumpyMLP(w1, gamma, beta, w2, b2, config.epsilon, config.momentum)

    rng = np.random.default_rng(config.seed)
    rows = []
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(len(x_train))  # the same batches for both
        losses = []
        for start in range(0, len(order), config.batch_size):
            raise_if_stopped()
            idx = order[start : start + config.batch_size]
            losses.append(reference.train_step(x_train[idx], y_train[idx], config.learning_rate))
        fit = model.fit(
            x_train[order].astype("float32"),
            y_train[order],
            batch_size=config.batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[StopOnSignal()],
        )
        np_test_loss, np_test_acc = reference.evaluate(x_test, y_test)
        k_test_loss, k_test_acc = model.evaluate(x_test.astype("float32"), y_test, verbose=0)
        rows.append(
            {
                "epoch": epoch,
                "numpy_train_loss": float(np.mean(losses)),
                "keras_train_loss": float(fit.history["loss"][0]),
                "numpy_test_loss": np_test_loss,
                "keras_test_loss": float(k_test_loss),
                "numpy_test_accuracy": np_test_acc,
                "keras_test_accuracy": float(k_test_acc),
            }
        )
    history = pd.DataFrame(rows)
    return history, {"test images": len(y_test), "train images": len(y_train)}


def run(config: Config, out_dir: Path, data_dir=None) -> ExperimentResult:
    check = gradient_check(config)
    history, sizes = train_both(config)
    last = history.iloc[-1]
    summary = pd.DataFrame(
        [
            {
                "model": "NumPy BN MLP",
                "test_accuracy": last["numpy_test_accuracy"],
                "test_loss": last["numpy_test_loss"],
            },
            {
                "model": "Keras BN MLP",
                "test_accuracy": last["keras_test_accuracy"],
                "test_loss": last["keras_test_loss"],
            },
        ]
    )
    check_table = check.assign(**{"max abs diff": check["max abs diff"].map("{:.2e}".format)})
    accuracy_table = summary.assign(
        test_accuracy=(100 * summary["test_accuracy"]).map("{:.2f}%".format),
        test_loss=summary["test_loss"].map("{:.4f}".format),
    )
    table = (
        f"Gradient check against Keras (float64, tolerance {config.tolerance:g}):\n\n"
        f"{check_table.to_markdown(index=False)}\n\n"
        f"Digits MLP after {config.epochs} epochs ({sizes['train images']} training, "
        f"{sizes['test images']} test images):\n\n{accuracy_table.to_markdown(index=False)}"
    )

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(history["epoch"], history["numpy_train_loss"], "-", label="NumPy train")
    axes[0].plot(history["epoch"], history["keras_train_loss"], "--", label="Keras train")
    axes[0].plot(history["epoch"], history["numpy_test_loss"], "-", label="NumPy test")
    axes[0].plot(history["epoch"], history["keras_test_loss"], "--", label="Keras test")
    axes[0].set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    axes[1].plot(history["epoch"], history["numpy_test_accuracy"], "-", label="NumPy")
    axes[1].plot(history["epoch"], history["keras_test_accuracy"], "--", label="Keras")
    axes[1].set(xlabel="epoch", ylabel="test accuracy", title="test accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("digits MLP 64-32-BN-ReLU-10, SGD lr 1e-3, batch 10: NumPy BN vs Keras BN")
    fig.tight_layout()
    figure = save_figure(fig, Path(out_dir) / "numpy_reference.png")
    result = ExperimentResult("numpy-reference", summary, history, [figure])
    write_text(Path(out_dir) / "gradient_check.csv", check.to_csv(index=False))
    return write_outputs(result, out_dir, "numpy-reference", table)
