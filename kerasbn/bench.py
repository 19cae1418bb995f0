"""Side-by-side training benchmark (``python -m kerasbn.bench``).

For each data set and variant it times, on the same machine in the same run:

1. ``kerasbn``: kerasbn's own training path (:func:`kerasbn.train`) on the default Keras
   backend (``KERAS_BACKEND``, TensorFlow unless set), and ``kerasbn-jax``: the same path
   on Keras' JAX backend (skipped with a note when JAX is absent); on request
   (``--paths``), ``kerasbn-unfused``: kerasbn's path with Keras' own BN instead of the
   fused kernel (``TrainConfig.fused_bn=False``), to see what fusing is worth;
2. ``naive``: what the tutorials do: the same Keras model, ``model.fit`` on float32
   NumPy arrays with default settings (batch 32, Keras' own shuffling);
3. ``torch``: the same architecture and optimizer in PyTorch eager mode (skipped with a
   note when PyTorch is not installed).

Each path runs in its own subprocess, so its peak memory (RSS, and GPU memory where
there is a GPU) is its own and no path warms another's caches. Throughput is
steady state: training images per second over the timed epochs after a warm-up epoch
(median), counting training steps only. The achieved model FLOP/s (3 x the forward
FLOPs per image, the usual forward + backward estimate) is given as a fraction of a
float32 matrix-multiply peak measured in the same run. Validation accuracy after the
timed epochs is printed too, so a speed-up that hurts learning shows. Augmentation is
off in every path: it is a CIFAR-10 training choice, not part of the compute compared.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from kerasbn import _tfenv

__all__ = ["BenchConfig", "forward_flops", "main", "matmul_peak", "run_benchmark"]

PATHS = ("kerasbn", "kerasbn-jax", "naive", "torch", "kerasbn-unfused")
DEFAULT_PATHS = PATHS[:4]
# Paths that need an optional package, and the environment their subprocess runs in
# (None: the variable is removed).
_NEEDS = {"kerasbn-jax": "jax", "torch": "torch"}
_PATH_ENV: dict[str, dict[str, str | None]] = {
    "kerasbn-jax": {"KERAS_BACKEND": "jax"},
    # kerasbn's package imports Keras; on its torch backend the PyTorch path does not
    # also load TensorFlow (about 400 MB of RSS).
    "torch": {"KERAS_BACKEND": "torch"},
    # The tutorials' TensorFlow: its own CPU defaults (the user's setting before
    # kerasbn's oneDNN default), not kerasbn's.
    "naive": {
        _tfenv.ONEDNN_VARIABLE: _tfenv.USER_ONEDNN,
        _tfenv.KEEP_TF_DEFAULTS_VARIABLE: "1",
    },
}


@dataclass(frozen=True)
class BenchConfig:
    datasets: tuple[str, ...] = ("mnist", "cifar10")
    variants: tuple[str, ...] = ("base", "bn+dropout")
    paths: tuple[str, ...] = DEFAULT_PATHS
    epochs: int = 3  # the first is warm-up; the rest are timed
    limit: int | None = 4096  # training images per epoch (None: the whole set)
    data_dir: str | None = None
    seed: int = 0
    batch_size: int | None = None  # kerasbn and PyTorch paths; None: the data set's default
    precision: str = "auto"  # kerasbn and PyTorch paths; auto: mixed_bfloat16 on a GPU
    repeats: int = 2  # rounds over the paths, in alternating order; medians are reported


QUICK = {"datasets": ("digits",), "epochs": 2, "limit": 512, "repeats": 1}


# ------------------------------------------------------------------ measurement helpers


def forward_flops(model) -> int:
    """Multiply-adds x 2 of one image's forward pass through the conv and dense layers
    (BN, pooling and activations are a few percent and left out)."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            h, w, c_out = layer.output.shape[1:]
            k_h, k_w, c_in, _ = layer.kernel.shape
            total += 2 * h * w * c_out * k_h * k_w * c_in
        elif kind == "Dense":
            n_in, n_out = layer.kernel.shape
            total += 2 * n_in * n_out
    return int(total)


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 matrix-multiply FLOP/s of this machine, through NumPy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def _peak_rss_mb() -> float:
    import resource

    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _steady(seconds: Sequence[float], images: int) -> tuple[float, float]:
    """Median seconds per epoch after the warm-up epoch, and images/s from it."""
    timed = list(seconds[1:]) or list(seconds)
    median = float(np.median(timed))
    return median, images / median


# ------------------------------------------------------------------ the three paths


def _load(dataset: str, config: BenchConfig):
    from kerasbn.data import load_dataset

    data = load_dataset(dataset, config.data_dir)
    limit = min(config.limit or len(data.x_train), len(data.x_train))
    return data.limit(limit, val=min(2000, len(data.x_val)))


def _on_gpu() -> bool:
    """Whether the Keras backend of this process trains on a GPU."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.devices()[0].platform == "gpu"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if keras.backend.backend() == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def _precision(config: BenchConfig, gpu: bool) -> str:
    if config.precision != "auto":
        return config.precision
    # 16-bit compute pays off on GPU tensor cores; on CPUs without bf16 units it is slower.
    return "mixed_bfloat16" if gpu else "float32"


def _run_kerasbn(
    dataset: str, variant: str, config: BenchConfig, fused_bn: bool | str = "auto"
) -> dict:
    from kerasbn.train import default_config, train

    data = _load(dataset, config)
    overrides = {"batch_size": config.batch_size} if config.batch_size else {}
    train_config = default_config(
        dataset,
        epochs=config.epochs,
        verbose=0,
        augment=False,
        seed=config.seed,
        precision=_precision(config, _on_gpu()),
        fused_bn=fused_bn,
        **overrides,
    )
    result = train(data, variant, train_config)
    seconds, images_per_s = _steady(list(result.history["train_seconds"]), result.train_examples)
    return {
        "batch_size": result.global_batch_size,
        "precision": train_config.precision,
        "seconds_per_epoch": seconds,
        "images_per_s": images_per_s,
        "val_accuracy": float(result.history["val_accuracy"].iloc[-1]),
        "flops_per_image": forward_flops(result.model),
    }


def _run_naive(dataset: str, variant: str, config: BenchConfig) -> dict:
    import keras

    from kerasbn.models import build_model
    from kerasbn.train import EpochTimer, default_config

    data = _load(dataset, config)
    keras.utils.set_random_seed(config.seed)
    model = build_model(dataset, variant, augment=False)
    lr = default_config(dataset).learning_rate
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    # The tutorial way: float32 copies of the images, fit's defaults (batch 32).
    x_train, x_val = data.x_train.astype("float32"), data.x_val.astype("float32")
    timer = EpochTimer()
    fit = model.fit(
        x_train,
        data.y_train,
        epochs=config.epochs,
        validation_data=(x_val, data.y_val),
        callbacks=[timer],
        verbose=0,
    )
    seconds, images_per_s = _steady(timer.train_seconds, len(x_train))
    return {
        "batch_size": 32,
        "precision": "float32",
        "seconds_per_epoch": seconds,
        "images_per_s": images_per_s,
        "val_accuracy": float(fit.history["val_accuracy"][-1]),
        "flops_per_image": forward_flops(model),
    }


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
                # PyTorch's momentum weighs the new batch: 1 - Keras' momentum.
                layers.append(nn.BatchNorm2d(width, eps=v.bn_epsilon, momentum=1 - v.bn_momentum))
            layers.append(nn.ReLU())
            channels = width
        layers.append(nn.MaxPool2d(2))
        height //= 2
        if v.block_dropout:
            layers.append(nn.Dropout(v.block_dropout))
    flat = channels * height * height
    layers += [nn.Flatten(), nn.Linear(flat, arch.dense_units, bias=not v.batch_norm)]
    if v.batch_norm:
        layers.append(
            nn.BatchNorm1d(arch.dense_units, eps=v.bn_epsilon, momentum=1 - v.bn_momentum)
        )
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


def _run_torch(dataset: str, variant: str, config: BenchConfig) -> dict:
    import torch

    from kerasbn.train import default_config

    data = _load(dataset, config)
    torch.manual_seed(config.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = _torch_model(dataset, variant).to(device)
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
                loss = loss_fn(model(xb).float(), yb)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
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
    seconds_per_epoch, images_per_s = _steady(seconds, len(x))
    out = {
        "batch_size": batch,
        "precision": precision,
        "seconds_per_epoch": seconds_per_epoch,
        "images_per_s": images_per_s,
        "val_accuracy": accuracy,
        "torch_threads": torch.get_num_threads(),
    }
    if device == "cuda":
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


_RUNNERS = {
    "kerasbn": _run_kerasbn,
    "kerasbn-jax": _run_kerasbn,
    "naive": _run_naive,
    "torch": _run_torch,
    "kerasbn-unfused": lambda dataset, variant, config: _run_kerasbn(
        dataset, variant, config, fused_bn=False
    ),
}


def _gpu_peak_mb() -> float | None:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "gpu":
            stats = device.memory_stats() or {}
            return stats.get("peak_bytes_in_use", 0) / 2**20
    return None


def _child(spec: str) -> None:
    """Subprocess entry: run one (path, dataset, variant) and print its figures."""
    job = json.loads(spec)
    config = BenchConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in job["config"].items()}
    )
    start = time.perf_counter()
    out = _RUNNERS[job["path"]](job["dataset"], job["variant"], config)
    out["wall_seconds"] = time.perf_counter() - start
    out["peak_rss_mb"] = _peak_rss_mb()
    if job["path"] != "torch":
        import keras

        out["backend"] = keras.backend.backend()
        if out["backend"] == "tensorflow":
            # oneDNN decides much of TensorFlow's CPU speed; no mark: TensorFlow's own choice.
            onednn = os.environ.get(_tfenv.ONEDNN_VARIABLE)
            out["backend"] += {None: "", "1": " +oneDNN", "0": " -oneDNN"}.get(onednn, "")
        if "gpu_peak_mb" not in out:
            out["gpu_peak_mb"] = _gpu_peak_mb()
    else:
        out["backend"] = "torch eager"
    print("BENCH " + json.dumps(out), flush=True)


# ------------------------------------------------------------------ driver


@dataclass
class BenchResult:
    table: pd.DataFrame
    ratios: pd.DataFrame
    peak_flops: float
    notes: list[str] = field(default_factory=list)


def _run_child(path: str, dataset: str, variant: str, config: BenchConfig) -> dict:
    job = {"path": path, "dataset": dataset, "variant": variant, "config": asdict(config)}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **_PATH_ENV.get(path, {})}
    env = {name: value for name, value in env.items() if value is not None}
    done = subprocess.run(
        [sys.executable, "-m", "kerasbn.bench", "--child", json.dumps(job)],
        capture_output=True,
        text=True,
        env=env,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"benchmark of {path} on {dataset}/{variant} failed:\n{done.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len("BENCH ") :])


def run_benchmark(config: BenchConfig, log=print) -> BenchResult:
    peaks = [matmul_peak()]
    log(f"[bench] float32 matmul peak (NumPy BLAS, 2048^3): {peaks[0] / 1e9:.1f} GFLOP/s")
    paths, notes = [], []
    for path in config.paths:
        needs = _NEEDS.get(path)
        if needs and importlib.util.find_spec(needs) is None:
            notes.append(f"{path}: {needs} is not installed (pip install {needs} to include it)")
            log(f"[bench] {path}: skipped ({notes[-1]})")
        else:
            paths.append(path)
    rows = []
    for dataset in config.datasets:
        for variant in config.variants:
            # Shared machines drift: alternate the order of the paths between rounds so
            # a slow spell does not land on one path only, and report medians.
            for round_ in range(config.repeats):
                for path in paths if round_ % 2 == 0 else paths[::-1]:
                    out = _run_child(path, dataset, variant, config)
                    rows.append({"dataset": dataset, "variant": variant, "path": path, **out})
                    log(
                        f"[bench] {dataset} {variant} {path}: {out['images_per_s']:,.0f} img/s, "
                        f"{out['seconds_per_epoch']:.2f} s/epoch, val acc "
                        f"{out['val_accuracy']:.4f}, peak RSS {out['peak_rss_mb']:,.0f} MB"
                    )
    # The peak again at the end: the best of both is the machine's capacity.
    peaks.append(matmul_peak())
    peak = max(peaks)
    log(f"[bench] float32 matmul peak at the end: {peaks[1] / 1e9:.1f} GFLOP/s")
    table = _median_rows(pd.DataFrame(rows))
    # FLOPs per image are the model's, the same for every path of a (dataset, variant).
    flops = table.groupby(["dataset", "variant"])["flops_per_image"].transform("max")
    table["model_gflops_per_s"] = 3 * flops * table["images_per_s"] / 1e9
    table["fraction_of_matmul_peak"] = table["model_gflops_per_s"] * 1e9 / peak
    ratios = _ratios(table)
    return BenchResult(table, ratios, peak, notes)


def _median_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, variant, path): the median of its rounds, peak memory max."""
    keys = ["dataset", "variant", "path"]
    grouped = raw.groupby(keys, sort=False)
    table = grouped.median(numeric_only=True)
    for column in ("peak_rss_mb", "gpu_peak_mb"):
        if column in raw:
            table[column] = grouped[column].max()
    for column in raw.columns.difference(table.columns).difference(keys):
        table[column] = grouped[column].first()
    table["rounds"] = grouped.size()
    return table.reset_index()


def _ratios(table: pd.DataFrame) -> pd.DataFrame:
    wide = table.pivot_table(index=["dataset", "variant"], columns="path", values="images_per_s")
    out = pd.DataFrame(index=wide.index)
    for ours in ("kerasbn", "kerasbn-jax"):
        for other in ("naive", "torch", "kerasbn-unfused"):
            if ours in wide and other in wide:
                out[f"{ours} / {other}"] = wide[ours] / wide[other]
    return out.reset_index()


def to_markdown(result: BenchResult) -> str:
    cols = {
        "dataset": "data set",
        "variant": "variant",
        "path": "path",
        "backend": "backend",
        "batch_size": "batch",
        "precision": "precision",
        "images_per_s": "train img/s",
        "seconds_per_epoch": "s / epoch",
        "val_accuracy": "val acc",
        "peak_rss_mb": "peak RSS MB",
        "gpu_peak_mb": "GPU peak MB",
        "model_gflops_per_s": "model GFLOP/s",
        "fraction_of_matmul_peak": "of matmul peak",
        "rounds": "rounds",
    }
    table = result.table[[c for c in cols if c in result.table]].rename(columns=cols)
    fmt = {
        "train img/s": "{:,.0f}",
        "s / epoch": "{:.2f}",
        "val acc": "{:.4f}",
        "peak RSS MB": "{:,.0f}",
        "GPU peak MB": "{:,.0f}",
        "model GFLOP/s": "{:.1f}",
        "of matmul peak": "{:.1%}",
    }
    for col, f in fmt.items():
        if col in table:
            table[col] = [("" if v is None or pd.isna(v) else f.format(v)) for v in table[col]]
    ratios = result.ratios.copy()
    for col in ratios.columns[2:]:
        ratios[col] = ratios[col].map("{:.2f}x".format)
    lines = [
        table.to_markdown(index=False),
        "",
        ratios.to_markdown(index=False),
        "",
        f"float32 matmul peak: {result.peak_flops / 1e9:.1f} GFLOP/s (NumPy BLAS, 2048^3)",
    ]
    lines += [f"note: {n}" for n in dict.fromkeys(result.notes)]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from kerasbn.train import PRECISIONS

    parser = argparse.ArgumentParser(
        prog="python -m kerasbn.bench",
        description="Training throughput of kerasbn vs the naive Keras path vs PyTorch eager.",
    )
    parser.add_argument("--datasets", default="mnist,cifar10")
    parser.add_argument("--variants", default="base,bn+dropout")
    parser.add_argument(
        "--paths", default=",".join(DEFAULT_PATHS), help=f"subset of {', '.join(PATHS)}"
    )
    parser.add_argument("--epochs", type=int, default=BenchConfig.epochs, help="1 warm-up + timed")
    parser.add_argument("--limit", type=int, default=BenchConfig.limit, help="training images")
    parser.add_argument("--data-dir")
    parser.add_argument(
        "--repeats", type=int, default=BenchConfig.repeats, help="rounds over the paths"
    )
    parser.add_argument(
        "--batch-size", type=int, help="kerasbn and PyTorch batch (default: per data set)"
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", *PRECISIONS),
        help="kerasbn and PyTorch compute precision; auto: mixed_bfloat16 on a GPU, "
        "else float32 (the naive path always uses Keras' float32 default)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny offline run (digits)")
    parser.add_argument("--out", help="also write the table as JSON and Markdown here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    config = BenchConfig(
        datasets=tuple(args.datasets.split(",")),
        variants=tuple(args.variants.split(",")),
        paths=tuple(args.paths.split(",")),
        epochs=args.epochs,
        limit=args.limit,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
        precision=args.precision,
        repeats=args.repeats,
    )
    if args.quick:
        config = replace(config, **QUICK)
    bad = [p for p in config.paths if p not in PATHS]
    if bad or config.epochs < 2 or config.repeats < 1:
        parser.exit(
            2,
            f"error: paths must be among {', '.join(PATHS)}, --epochs at least 2 (one "
            f"warm-up, one timed) and --repeats at least 1. Received: paths={config.paths}, "
            f"epochs={config.epochs}, repeats={config.repeats}\n",
        )
    result = run_benchmark(config)
    markdown = to_markdown(result)
    print(markdown)
    if args.out:
        from kerasbn._io import write_json, write_text

        out = Path(args.out)
        write_text(out / "bench.md", markdown)
        write_json(
            out / "bench.json",
            {
                "config": asdict(config),
                "peak_flops": result.peak_flops,
                "rows": result.table.to_dict("records"),
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "date": time.strftime("%Y-%m-%d"),
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
