"""The training paths a benchmark compares, each run in its own subprocess:

* ``kerasbn`` / ``kerasbn-jax`` / ``kerasbn-unfused``: :func:`kerasbn.train` (the last
  with Keras' own BN instead of the fused kernel);
* ``naive``: the tutorials' ``model.fit`` on float32 arrays with Keras' defaults (batch
  32, TensorFlow's own CPU settings); ``naive-same-batch``: the same at kerasbn's batch,
  so that kerasbn's gain over it excludes the batch size;
* ``kerasbn-no-onednn``: kerasbn's path with TensorFlow's oneDNN kernels off;
* ``torch``: the same architecture and optimizer in PyTorch eager mode.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

from kerasbn.bench.config import BFLOAT16, BenchConfig
from kerasbn.bench.measure import forward_flops, steady
from kerasbn.training.precision import on_gpu, resolve_precision

__all__ = ["RUNNERS"]


def _load(dataset: str, config: BenchConfig):
    from kerasbn.data import load_dataset

    data = load_dataset(dataset, config.data_dir)
    limit = min(config.limit or len(data.x_train), len(data.x_train))
    return data.limit(limit, val=min(2000, len(data.x_val)))


def _precision(config: BenchConfig, gpu: bool) -> str:
    # The same rule as compare --precision auto: bfloat16 on a GPU; on CPUs float32
    # until bfloat16's accuracy parity is measured (kerasbn.training.precision).
    return resolve_precision(config.precision, gpu=gpu).precision


def _run_kerasbn(
    dataset: str, variant: str, config: BenchConfig, fused_bn: bool | str = "auto"
) -> dict:
    from kerasbn.training import default_config, train

    data = _load(dataset, config)
    overrides = {"batch_size": config.batch_size} if config.batch_size else {}
    train_config = default_config(
        dataset,
        epochs=config.epochs,
        verbose=0,
        augment=False,
        seed=config.seed,
        precision=_precision(config, on_gpu()),
        fused_bn=fused_bn,
        **overrides,
    )
    result = train(data, variant, train_config)
    seconds, images_per_s = steady(list(result.history["train_seconds"]), result.train_examples)
    return {
        "batch_size": result.global_batch_size,
        "precision": train_config.precision,
        "seconds_per_epoch": seconds,
        "images_per_s": images_per_s,
        "val_accuracy": float(result.history["val_accuracy"].iloc[-1]),
        "flops_per_image": forward_flops(result.model),
    }


def _run_naive(dataset: str, variant: str, config: BenchConfig, same_batch: bool = False) -> dict:
    import keras

    from kerasbn.models import build_model
    from kerasbn.training import EpochTimer, compile_classifier, default_config

    data = _load(dataset, config)
    keras.utils.set_random_seed(config.seed)
    model = build_model(dataset, variant, augment=False)
    lr = default_config(dataset).learning_rate
    compile_classifier(model, keras.optimizers.Adam(lr))
    # The tutorial way: float32 copies of the images, fit's defaults (batch 32), or the
    # batch kerasbn's path uses.
    batch = (config.batch_size or default_config(dataset).batch_size) if same_batch else 32
    x_train, x_val = data.x_train.astype("float32"), data.x_val.astype("float32")
    timer = EpochTimer()
    fit = model.fit(
        x_train,
        data.y_train,
        batch_size=batch,
        epochs=config.epochs,
        validation_data=(x_val, data.y_val),
        callbacks=[timer],
        verbose=0,
    )
    seconds, images_per_s = steady(timer.train_seconds, len(x_train))
    return {
        "batch_size": batch,
        "precision": "float32",
        "seconds_per_epoch": seconds,
        "images_per_s": images_per_s,
        "val_accuracy": float(fit.history["val_accuracy"][-1]),
        "flops_per_image": forward_flops(model),
    }


def _torch_norm(nn, variant, channels: int, dims: int):
    """The PyTorch layer of a variant's normalization (the models' _norm, in PyTorch)."""
    if variant.norm == "batch":
        # PyTorch's momentum weighs the new batch: 1 - Keras' momentum.
        layer = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        return layer(channels, eps=variant.bn_epsilon, momentum=1 - variant.bn_momentum)
    groups = math.gcd(32, channels) if variant.norm == "group" else 1
    return nn.GroupNorm(groups, channels, eps=variant.bn_epsilon)


def _torch_model(dataset: str, variant: str):
    from torch import nn

    from kerasbn.architectures import get_architecture
    from kerasbn.variants import get_variant

    arch, v = get_architecture(dataset), get_variant(variant)
    height, channels = arch.input_shape[0], arch.input_shape[-1]
    layers: list = []
    for filters in arch.blocks:
        for width in filters:
            layers.append(nn.Conv2d(channels, width, 3, padding=1, bias=not v.batch_norm))
            if v.batch_norm:
                layers.append(_torch_norm(nn, v, width, 2))
            layers.append(nn.ReLU())
            channels = width
        layers.append(nn.MaxPool2d(2))
        height //= 2
        if v.block_dropout:
            layers.append(nn.Dropout(v.block_dropout))
    flat = channels * height * height
    layers += [nn.Flatten(), nn.Linear(flat, arch.dense_units, bias=not v.batch_norm)]
    if v.batch_norm:
        layers.append(_torch_norm(nn, v, arch.dense_units, 1))
    layers.append(nn.ReLU())
    if v.head_dropout:
        layers.append(nn.Dropout(v.head_dropout))
    layers.append(nn.Linear(arch.dense_units, arch.num_classes))
    model = nn.Sequential(*layers)
    # Keras' initializers, not PyTorch's: he_normal (truncated) for conv and hidden
    # kernels, glorot_uniform for the classifier, zero biases. PyTorch's smaller default
    # makes early BN activations tiny, and its eval-mode statistics lag far behind.
    for module in model:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if module is model[-1]:
                nn.init.xavier_uniform_(module.weight)
            else:
                fan_in = module.weight[0].numel()
                std = math.sqrt(2.0 / fan_in) / 0.87962566103423978  # Keras' truncation
                nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def _run_torch(dataset: str, variant: str, config: BenchConfig, compiled: bool = False) -> dict:
    """PyTorch eager, or with ``compiled`` the same model under ``torch.compile`` (the
    default inductor backend): the strongest PyTorch peer. Compiling happens in the
    first steps of the warm-up epoch, which is not timed; its time is reported apart
    (``compile_seconds``: the first step, which compiles forward and backward), as
    kerasbn's tracing is."""
    import torch

    from kerasbn.training import default_config

    data = _load(dataset, config)
    torch.manual_seed(config.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = _torch_model(dataset, variant).to(device)
    # The compiled module shares the eager one's parameters; validation runs eagerly
    # (other batch sizes would only compile again, outside the timed steps anyway).
    step_model = torch.compile(model) if compiled else model
    train_config = default_config(dataset)
    # Keras' Adam epsilon (PyTorch's default is 1e-8).
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.learning_rate, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    # NCHW uint8 tensors; each batch is scaled to [0, 1] on the fly, as in kerasbn.
    x = torch.from_numpy(np.ascontiguousarray(data.x_train.transpose(0, 3, 1, 2)))
    y = torch.from_numpy(data.y_train.astype(np.int64))
    batch = config.batch_size or train_config.batch_size
    precision = _precision(config, device == "cuda")
    # The same mixed precision as Keras' policy: 16-bit matmuls/convs under autocast.
    half = {"mixed_bfloat16": torch.bfloat16, "mixed_float16": torch.float16}.get(precision)
    autocast = torch.autocast(device, dtype=half, enabled=half is not None)
    scaler = torch.amp.GradScaler(device, enabled=half == torch.float16)
    rng = np.random.default_rng(config.seed)
    seconds = []
    compile_seconds = None
    for _ in range(config.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            xb = x[idx].to(device).float().div_(255)
            yb = y[idx].to(device)
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = loss_fn(step_model(xb).float(), yb)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if compile_seconds is None:
                compile_seconds = time.perf_counter() - start
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        xv = torch.from_numpy(np.ascontiguousarray(data.x_val.transpose(0, 3, 1, 2)))
        logits = torch.cat(
            [model(xv[i : i + 512].to(device).float() / 255).cpu() for i in range(0, len(xv), 512)]
        )
    accuracy = float((logits.argmax(1).numpy() == data.y_val).mean())
    seconds_per_epoch, images_per_s = steady(seconds, len(x))
    out = {
        "batch_size": batch,
        "precision": precision,
        "seconds_per_epoch": seconds_per_epoch,
        "images_per_s": images_per_s,
        "val_accuracy": accuracy,
        "torch_threads": torch.get_num_threads(),
    }
    if compiled:
        out["compile_seconds"] = compile_seconds
    if device == "cuda":
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


RUNNERS = {
    "kerasbn": _run_kerasbn,
    "kerasbn-jax": _run_kerasbn,
    "kerasbn-no-onednn": _run_kerasbn,  # its subprocess runs with oneDNN off
    "naive": _run_naive,
    "naive-same-batch": lambda dataset, variant, config: _run_naive(
        dataset, variant, config, same_batch=True
    ),
    "torch": _run_torch,
    "torch-compile": lambda dataset, variant, config: _run_torch(
        dataset, variant, config, compiled=True
    ),
    "kerasbn-unfused": lambda dataset, variant, config: _run_kerasbn(
        dataset, variant, config, fused_bn=False
    ),
    "kerasbn-bf16": lambda dataset, variant, config: _run_kerasbn(
        dataset, variant, replace(config, precision=BFLOAT16)
    ),
    "torch-bf16": lambda dataset, variant, config: _run_torch(
        dataset, variant, replace(config, precision=BFLOAT16)
    ),
    "torch-compile-bf16": lambda dataset, variant, config: _run_torch(
        dataset, variant, replace(config, precision=BFLOAT16), compiled=True
    ),
}
