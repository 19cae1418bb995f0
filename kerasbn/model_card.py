"""A Markdown model card for each saved model (``<name>.md`` beside ``<name>.keras``).

Written from the metadata :func:`kerasbn.saving.save_model` stores in the sidecar, so a
card says only what was recorded: the data and where it came from, the variant and
the recipe, the test accuracy with its 95% interval over the test images (one trained
model: Wilson), training time, the command that made it, how to load it, and what it
is not meant for.
"""

from __future__ import annotations

import math

from kerasbn._text import markdown_safe

__all__ = ["model_card"]

_JPEG_NOTE = (
    "The CIFAR-10 images it was trained and tested on are a JPEG re-compression of the "
    "official data set (lossy: some fine detail is gone), so its accuracy is not directly "
    "comparable with figures on the original PNG-quality images."
)


def _percent(value) -> str:
    return "—" if value is None or not math.isfinite(float(value)) else f"{100 * value:.2f}%"


def _accuracy_line(metrics: dict) -> str:
    from kerasbn.stats import wilson_interval

    accuracy, n = metrics.get("test_accuracy"), metrics.get("test_examples")
    if accuracy is None or not n or not math.isfinite(float(accuracy)):
        return f"test accuracy {_percent(accuracy)}"
    ci = wilson_interval(round(accuracy * n), n)
    return (
        f"test accuracy **{_percent(accuracy)}** (95% interval {_percent(ci.low)} to "
        f"{_percent(ci.high)} over the {n:,} test images; one trained model, one seed)"
    )


def model_card(name: str, metadata: dict) -> str:
    """The card of the model file ``name`` (e.g. ``cifar10-bn.keras``) from its metadata.

    Every recorded text is written as inert Markdown (:func:`kerasbn._text.markdown_safe`):
    a sidecar is a file, and a file may hold HTML or table-breaking text.
    """
    metadata = _safe(metadata)
    name = markdown_safe(name)
    variant = metadata.get("variant") or {}
    variant_name = variant.get("name") if isinstance(variant, dict) else variant
    config = metadata.get("train_config") or {}
    source = metadata.get("data_source") or {}
    metrics = metadata.get("metrics") or {}
    dataset = metadata.get("dataset", "?")
    recipe = ", ".join(
        f"{key} {config[key]}"
        for key in ("optimizer", "learning_rate", "lr_schedule", "warmup_epochs", "epochs")
        if key in config
    )
    batch = config.get("batch_size")
    stem = name.removesuffix(".keras")
    augment = config.get("augment")
    augment = "data set default" if augment is None else augment
    versions = ", ".join(f"{k} {v}" for k, v in (metadata.get("versions") or {}).items())
    command = f"`{metadata['command']}`" if metadata.get("command") else "a call from Python"
    lines = [
        f"# {name}",
        "",
        f"A kerasbn CNN for **{dataset}**, variant **`{variant_name}`** "
        f"({'with' if isinstance(variant, dict) and variant.get('batch_norm') else 'without'}"
        " Batch Normalization).",
        "",
        "| | |",
        "| --- | --- |",
        f"| data | {dataset}: {source.get('train', '?')} training, {source.get('val', '?')} "
        f"validation, {source.get('test', '?')} test images, from {source.get('source', '?')} |",
        f"| input | uint8 pixels, shape {metadata.get('input_shape')} "
        f"({metadata.get('preprocessing', 'scaled inside the model')}) |",
        f"| classes | {', '.join(map(str, metadata.get('class_names') or []))} |",
        f"| parameters | {metadata.get('parameters', '—'):,} |"
        if isinstance(metadata.get("parameters"), int)
        else "| parameters | — |",
        f"| recipe | {recipe}; batch {batch}; seed {metadata.get('seed')}; "
        f"augmentation {augment} |",
        f"| result | {_accuracy_line(metrics)}; best validation accuracy "
        f"{_percent(metrics.get('best_val_accuracy'))} |",
        f"| training time | {metadata.get('train_seconds', 0) / 60:.1f} min |"
        if metadata.get("train_seconds")
        else "| training time | — |",
        f"| made by | {command} (run folder `{metadata.get('run_folder', '?')}`, "
        f"{metadata.get('created', '?')}) |",
        f"| libraries | {versions} |",
        "",
        "## Load it",
        "",
        "```python",
        "import kerasbn",
        f'model = kerasbn.load_model("{stem}")  # in saved_models/; else pass the file path',
        "pred = kerasbn.predict(model, images)  # uint8, the input shape above",
        "```",
        "",
        f"or `python -m kerasbn.predict --model {stem} image.png`; loading checks the file "
        "before Keras reads it (`kerasbn.loading`).",
        "",
        "## Intended use and limitations",
        "",
        "Made to study what Batch Normalization and Dropout do on a small CNN, and to be "
        "compared with its sibling variants trained the same way; not tuned for the best "
        "accuracy on this data set, and not meant for decisions about people or for images "
        "unlike its training images (other sizes, other kinds of objects). One seed: the spread "
        "between seeds, reported by `python -m kerasbn.compare --seeds N`, is often larger "
        "than the interval above.",
    ]
    if "jpeg" in str(source.get("source", "")).lower():
        lines += ["", _JPEG_NOTE]
    return "\n".join(lines) + "\n"


def _safe(value):
    """``value`` with every string in it (keys and values, nested) Markdown-safe."""
    if isinstance(value, dict):
        return {markdown_safe(k): _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    if isinstance(value, str):
        return markdown_safe(value)
    return value
