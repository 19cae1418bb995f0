"""The subprocess protocol: each (path, data set, variant) runs in a fresh Python
started as ``python -m kerasbn.bench --child JSON``, which prints one ``BENCH {json}``
line with its figures. Its own process gives each path its own peak memory and no
warm caches from another path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict

from kerasbn import _tfenv
from kerasbn.bench.config import BenchConfig
from kerasbn.bench.measure import gpu_peak_mb, peak_rss_mb
from kerasbn.bench.paths import RUNNERS

__all__ = ["NEEDS", "PATH_ENV", "child_main", "run_child"]

# Paths that need an optional package, and the environment their subprocess runs in
# (None: the variable is removed).
NEEDS = {
    "kerasbn-jax": "jax",
    **{path: "torch" for path in ("torch", "torch-compile", "torch-bf16", "torch-compile-bf16")},
}
# The tutorials' TensorFlow: its own CPU defaults (the user's setting before kerasbn's
# oneDNN default), not kerasbn's.
_TF_DEFAULTS = {_tfenv.ONEDNN_VARIABLE: _tfenv.USER_ONEDNN, _tfenv.KEEP_TF_DEFAULTS_VARIABLE: "1"}
PATH_ENV: dict[str, dict[str, str | None]] = {
    "kerasbn-jax": {"KERAS_BACKEND": "jax"},
    # kerasbn's package imports Keras; on its torch backend the PyTorch path does not
    # also load TensorFlow (about 400 MB of RSS).
    **{path: {"KERAS_BACKEND": "torch"} for path in NEEDS if path.startswith("torch")},
    "naive": _TF_DEFAULTS,
    "naive-same-batch": _TF_DEFAULTS,
    "kerasbn-no-onednn": {_tfenv.ONEDNN_VARIABLE: "0"},
}


def child_main(spec: str) -> None:
    """Subprocess entry: run one (path, dataset, variant) and print its figures."""
    job = json.loads(spec)
    config = BenchConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in job["config"].items()}
    )
    start = time.perf_counter()
    out = RUNNERS[job["path"]](job["dataset"], job["variant"], config)
    out["wall_seconds"] = time.perf_counter() - start
    out["peak_rss_mb"] = peak_rss_mb()
    if not job["path"].startswith("torch"):
        import keras

        out["backend"] = keras.backend.backend()
        if out["backend"] == "tensorflow":
            # oneDNN decides much of TensorFlow's CPU speed; no mark: TensorFlow's own choice.
            onednn = os.environ.get(_tfenv.ONEDNN_VARIABLE)
            out["backend"] += {None: "", "1": " +oneDNN", "0": " -oneDNN"}.get(onednn, "")
        if "gpu_peak_mb" not in out:
            out["gpu_peak_mb"] = gpu_peak_mb()
    else:
        compiled = job["path"].startswith("torch-compile")
        out["backend"] = "torch compile (inductor)" if compiled else "torch eager"
    # The protocol line the parent reads (stdout is the pipe, not a log).
    print("BENCH " + json.dumps(out), flush=True)


def run_child(path: str, dataset: str, variant: str, config: BenchConfig) -> dict:
    job = {"path": path, "dataset": dataset, "variant": variant, "config": asdict(config)}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **PATH_ENV.get(path, {})}
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
