"""Saving trained models and a checked manifest; SavedModel export.

Loading them back, with every check an untrusted file needs, is :mod:`kerasbn.loading`.
Saving writes ``<name>.keras`` plus a JSON sidecar, and records the file in
``manifest.json`` (name, SHA-256, data set, variant, input shape and dtype, class names,
preprocessing, metrics, versions, creation time). Every file is written to a temporary
name and renamed into place.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from kerasbn._io import (
    atomic_path,
    check_output_folder,
    remove_stale_temps,
    write_json,
    write_text,
)
from kerasbn._limits import read_capped, require_regular_file
from kerasbn._lock import FolderLock
from kerasbn._versions import library_versions
from kerasbn.model_card import model_card

if TYPE_CHECKING:  # Keras loads with the first save or export; listing needs none of it
    import keras

log = logging.getLogger(__name__)

__all__ = [
    "MANIFEST_NAME",
    "MAX_JSON_BYTES",
    "ModelFileError",
    "card_path",
    "copy_model",
    "export_saved_model",
    "list_models",
    "read_json_file",
    "read_manifest",
    "read_sidecar",
    "save_model",
    "sha256_file",
    "sidecar_path",
]

MANIFEST_NAME = "manifest.json"
# A manifest or sidecar of thousands of models is well under a megabyte.
MAX_JSON_BYTES = 64 * 1024 * 1024
# Manifest fields copied from the metadata that `compare` passes to save_model.
_MANIFEST_FIELDS = (
    "dataset",
    "variant",
    "seed",
    "input_shape",
    "input_dtype",
    "parameters",
    "class_names",
    "preprocessing",
    "metrics",
)


class ModelFileError(ValueError):
    """A model file was refused: corrupt, unsafe, oversize or not matching its manifest."""


def card_path(model_path: str | os.PathLike) -> Path:
    """``saved_models/mnist-bn.keras`` -> ``saved_models/mnist-bn.md`` (its model card)."""
    return Path(model_path).with_suffix(".md")


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """``saved_models/mnist-bn.keras`` -> ``saved_models/mnist-bn.json``."""
    return Path(model_path).with_suffix(".json")


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- manifest


def read_json_file(path: Path, fix: str, limit: int = MAX_JSON_BYTES):
    """A JSON file kerasbn did not necessarily write: a regular file under ``limit``
    bytes, parsed with any failure (including nesting too deep for Python) as one
    :class:`ModelFileError` that ends with ``fix``."""
    try:
        require_regular_file(path)
        with path.open("rb") as fh:
            raw = read_capped(fh, str(path), limit, "kerasbn never writes one that large")
            return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8 and read-limit errors
        raise ModelFileError(f"{path} is corrupted or unsafe ({exc}). {fix}") from exc


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of a model folder (``{"models": {}}`` when there is none)."""
    path = Path(folder) / MANIFEST_NAME
    if not os.path.lexists(path):
        return {"format": 1, "models": {}}
    fix = "Restore it, or delete it and re-save the models."
    manifest = read_json_file(path, fix)
    models = manifest.get("models") if isinstance(manifest, dict) else None
    if not isinstance(models, dict) or not all(isinstance(e, dict) for e in models.values()):
        raise ModelFileError(
            f"{path} is corrupted (it needs a 'models' object of one object per file). {fix}"
        )
    return manifest


def _update_manifest(model_path: Path, metadata: dict) -> dict:
    folder = model_path.parent
    manifest = read_manifest(folder)
    variant = metadata.get("variant")
    entry = {
        "file": model_path.name,
        "sha256": sha256_file(model_path),
        "bytes": model_path.stat().st_size,
        **{key: metadata[key] for key in _MANIFEST_FIELDS if key in metadata},
        "variant": variant.get("name") if isinstance(variant, dict) else variant,
        "versions": metadata.get("versions") or library_versions(),
        "created": metadata.get("created") or _dt.datetime.now().isoformat(timespec="seconds"),
    }
    manifest["models"][model_path.name] = entry
    write_json(folder / MANIFEST_NAME, manifest)
    return entry


def list_models(folder: str | os.PathLike = "saved_models") -> pd.DataFrame:
    """The models recorded in ``<folder>/manifest.json``, one row each."""
    entries = list(read_manifest(folder)["models"].values())
    frame = pd.DataFrame(entries)
    if len(frame) and "metrics" in frame:
        frame["test_accuracy"] = [
            (m or {}).get("test_accuracy") if isinstance(m, dict) else None
            for m in frame["metrics"]
        ]
    return frame


def copy_model(model_path: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Copy a saved model with its sidecar and model card into another model folder
    (e.g. the repository's shipped ``zoo/``), its manifest entry (SHA-256 included)
    carried over after the copy is checked against it.

    Raises:
        ModelFileError: the model is not in its folder's manifest, or its file no
            longer matches the recorded SHA-256.
    """
    model_path, folder = Path(model_path), Path(folder)
    entry = read_manifest(model_path.parent)["models"].get(model_path.name)
    if entry is None:
        raise ModelFileError(
            f"{model_path} is not recorded in {model_path.parent / MANIFEST_NAME}; only a "
            "model saved by kerasbn (with its manifest entry) is copied."
        )
    if sha256_file(model_path) != entry.get("sha256"):
        raise ModelFileError(
            f"{model_path} does not match the SHA-256 in its manifest; it was changed "
            "after it was saved. Re-train it rather than ship it."
        )
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / model_path.name
    with FolderLock(folder, name=".manifest.lock", wait=60):
        for source in (model_path, sidecar_path(model_path), card_path(model_path)):
            if source.exists():
                with atomic_path(folder / source.name) as tmp:
                    shutil.copyfile(source, tmp)
        manifest = read_manifest(folder)
        manifest["models"][target.name] = entry
        write_json(folder / MANIFEST_NAME, manifest)
    return target


def save_model(model: keras.Model, path: str | os.PathLike, metadata: dict) -> Path:
    """Save ``model`` as ``.keras`` with a JSON sidecar, and record it in the manifest.

    Fused BN layers are saved as Keras' plain ``BatchNormalization`` (same weights), and
    no optimizer state is saved: the file holds the inference model only. A model
    already at ``path`` is not replaced silently: it moves, with its sidecar and manifest
    entry, to ``<stem>.<its creation time>.keras`` and stays loadable; the log says so.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"Models are saved in the native .keras format. Received: {str(path)!r}")
    from kerasbn.layers import unfuse_batch_norm

    model = unfuse_batch_norm(model)
    if getattr(model, "optimizer", None) is not None:
        # An inference model carries no optimizer state (Adam's two moments would triple
        # the file): an uncompiled copy from the config (clone_model would compile it).
        plain = model.__class__.from_config(model.get_config())
        plain.set_weights(model.get_weights())
        model = plain
    path.parent.mkdir(parents=True, exist_ok=True)
    # Under the manifest's lock: two runs saving into one folder must not lose each
    # other's entry, nor both move the same earlier model away.
    with FolderLock(path.parent, name=".manifest.lock", wait=60):
        # Every write into a model folder happens under this lock, so a temporary file
        # found now was left by a writer that was killed: it goes.
        if remove_stale_temps(path.parent):
            log.info("removed half-written files of a killed save from %s", path.parent)
        earlier = _keep_earlier(path)
        needed = int(sum(w.nbytes for w in model.get_weights()) * 1.1) + 2**20
        with atomic_path(path, suffix=".keras", needed=needed) as tmp:
            model.save(tmp)
        write_json(sidecar_path(path), metadata)
        write_text(card_path(path), model_card(path.name, metadata))
        _update_manifest(path, metadata)
    if earlier is not None:
        log.info("saved model %s; the model it replaced is kept as %s", path, earlier)
    return path


def _keep_earlier(path: Path) -> Path | None:
    """Give a model already at ``path`` (file, sidecar and manifest entry) a name of its
    own as well, ``<stem>.<created>.keras``, so that no saved model is silently replaced.

    The earlier model is linked (or copied) to that name and its entry added first; the
    entry at ``path`` stays until the new model replaces it, so a kill at any moment
    leaves ``path`` listed and every file written so far addressable.
    """
    if not path.exists():
        return None
    manifest = read_manifest(path.parent)
    entry = manifest["models"].get(path.name)
    created = (entry or {}).get("created") or _dt.datetime.fromtimestamp(
        path.stat().st_mtime
    ).isoformat(timespec="seconds")
    stamp = created.replace("-", "").replace(":", "")
    archived, k = path.with_name(f"{path.stem}.{stamp}.keras"), 1
    while archived.exists():
        k += 1
        archived = path.with_name(f"{path.stem}.{stamp}-{k}.keras")
    pairs = [(path, archived)] + [(f(path), f(archived)) for f in (sidecar_path, card_path)]
    for source, target in pairs:
        if source.exists():
            with atomic_path(target) as tmp:
                tmp.unlink()
                try:
                    os.link(source, tmp)  # no second copy of the bytes
                except OSError:
                    shutil.copy2(source, tmp)
    if entry is not None:
        replaced = _dt.datetime.now().isoformat(timespec="seconds")
        manifest["models"][archived.name] = {**entry, "file": archived.name, "replaced": replaced}
        write_json(path.parent / MANIFEST_NAME, manifest)
    return archived


def read_sidecar(model_path: str | os.PathLike) -> dict:
    """The JSON metadata saved next to a model (empty dict when there is none)."""
    side = sidecar_path(model_path)
    if not os.path.lexists(side):
        return {}
    metadata = read_json_file(side, "Delete it, or re-save the model.")
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{side} is corrupted (not a JSON object). Delete it.")
    return metadata


def export_saved_model(model: keras.Model | str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write a TensorFlow SavedModel for serving (``model.export``); the folder must be new.

    The served function takes uint8 images (N, H, W, C) and returns class probabilities.
    """
    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; pass a new folder.")
    check_output_folder(out_dir, "--out", create=False)  # before loading the model
    import keras

    if not isinstance(model, keras.Model):
        from kerasbn.loading import load_model  # loading imports this module

        model = load_model(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    # training=False explicitly: a direct call would run any random preprocessing layer
    # in training mode (their default), and BN/Dropout must be in inference mode.
    archive.add_endpoint(
        name="serve",
        fn=lambda images: model(images, training=False),
        input_signature=[keras.InputSpec(shape=(None, *model.input_shape[1:]), dtype="uint8")],
    )
    existed = out_dir.exists()
    try:
        archive.write_out(str(out_dir), verbose=False)
    except BaseException:
        # A partial SavedModel (e.g. a full disk) would block the retry: remove it.
        if existed:
            for item in out_dir.iterdir():
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        else:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return out_dir
