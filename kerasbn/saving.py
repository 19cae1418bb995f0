"""Saving trained models, a checked manifest, and safe loading.

A model file is often downloaded from somewhere else, so :func:`load_model` inspects it
before Keras deserializes anything:

* only the native ``.keras`` format (legacy ``.h5`` needs ``allow_h5=True``);
* a size cap, a zip integrity check (CRC of every member), and the SHA-256 recorded in
  ``manifest.json`` beside the file when there is one;
* the architecture in ``config.json`` may only name Keras' own modules: no ``Lambda``
  layer, no function or class from any other module, no custom-registered object
  (kerasbn models need none);
* then Keras loads it in safe mode.

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
import warnings
import zipfile
from pathlib import Path

import keras
import pandas as pd

from kerasbn._io import atomic_path, check_output_folder, write_json
from kerasbn._lock import FolderLock
from kerasbn._versions import library_versions
from kerasbn.layers import unfuse_batch_norm

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MANIFEST_NAME",
    "ModelFileError",
    "check_model_config",
    "export_saved_model",
    "list_models",
    "load_model",
    "read_manifest",
    "read_sidecar",
    "save_model",
    "sha256_file",
    "sidecar_path",
]

MANIFEST_NAME = "manifest.json"
# The largest kerasbn model is a few MB; 512 MiB leaves room for much bigger user models
# while refusing absurd files before anything is read.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
# Manifest fields copied from the metadata that `compare` passes to save_model.
_MANIFEST_FIELDS = (
    "dataset",
    "variant",
    "seed",
    "input_shape",
    "input_dtype",
    "class_names",
    "preprocessing",
    "metrics",
)


class ModelFileError(ValueError):
    """A model file was refused: corrupt, unsafe, oversize or not matching its manifest."""


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


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of a model folder (``{"models": {}}`` when there is none)."""
    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        return {"format": 1, "models": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest.get("models"), dict):
            raise ValueError("no 'models' mapping")
    except (ValueError, AttributeError) as exc:
        raise ModelFileError(
            f"{path} is corrupted ({exc}). Restore it, or delete it and re-save the models."
        ) from exc
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
        earlier = _keep_earlier(path)
        needed = int(sum(w.nbytes for w in model.get_weights()) * 1.1) + 2**20
        with atomic_path(path, suffix=".keras", needed=needed) as tmp:
            model.save(tmp)
        write_json(sidecar_path(path), metadata)
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
    for source, target in ((path, archived), (sidecar_path(path), sidecar_path(archived))):
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
    return json.loads(side.read_text()) if side.exists() else {}


# --------------------------------------------------------------------------- inspection


def _is_keras_module(module) -> bool:
    return module is None or module == "keras" or str(module).startswith("keras.")


def check_model_config(config, origin: str = "model") -> None:
    """Refuse a model architecture that could run code outside Keras when loaded.

    Walks the serialized config (``config.json`` of a ``.keras`` file, or the
    ``model_config`` of an ``.h5``) and raises :class:`ModelFileError` for a ``Lambda``
    layer, any ``module`` outside Keras, or a custom-registered object. It reads only
    JSON; nothing is imported or executed.
    """
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        class_name = node.get("class_name")
        if class_name in ("Lambda", "TFSMLayer"):
            raise ModelFileError(
                f"{origin} holds a {class_name} layer, which runs arbitrary Python code when "
                "loaded; kerasbn models never contain one. Refused. Only load such a file "
                "from a source you trust, with keras.saving.load_model(..., safe_mode=False)."
            )
        module = node.get("module")
        if "class_name" in node and not _is_keras_module(module):
            raise ModelFileError(
                f"{origin} names {module}.{node.get('config', class_name)!s} ({class_name}), "
                "which is outside Keras; loading it could import or run foreign code. Refused."
            )
        registered = node.get("registered_name")
        if isinstance(registered, str) and ">" in registered:
            raise ModelFileError(
                f"{origin} needs the custom object {registered!r}; kerasbn loads no custom "
                "objects. Refused."
            )
        stack.extend(node.values())


def _check_keras_archive(path: Path) -> None:
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path} is corrupted or truncated (not a valid .keras zip archive). Re-save or "
            "re-download it."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every member and checks its CRC
            if bad is not None:
                raise ModelFileError(f"{path} is corrupted or truncated (bad member {bad}).")
            names = set(archive.namelist())
            if "config.json" not in names:
                raise ModelFileError(
                    f"{path} is corrupted or truncated (no config.json inside). Re-save it."
                )
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(
            f"{path} is corrupted or truncated ({exc}). Re-save or re-download it."
        ) from exc
    check_model_config(config, str(path))


def _check_h5(path: Path) -> None:
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            raw = h5.attrs.get("model_config")
    except OSError as exc:
        raise ModelFileError(f"{path} is corrupted or truncated ({exc}).") from exc
    if raw is None:
        raise ModelFileError(f"{path} holds weights only, no model (no model_config).")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    check_model_config(json.loads(raw), str(path))


def _check_manifest(path: Path) -> None:
    manifest = read_manifest(path.parent)
    if not manifest["models"]:
        return
    entry = manifest["models"].get(path.name)
    if entry is None:
        warnings.warn(
            f"{path.name} is not listed in {path.parent / MANIFEST_NAME}; its integrity "
            "cannot be checked.",
            stacklevel=3,
        )
        return
    actual = sha256_file(path)
    if actual != entry.get("sha256"):
        raise ModelFileError(
            f"SHA-256 of {path} ({actual[:12]}...) does not match {MANIFEST_NAME} "
            f"({str(entry.get('sha256'))[:12]}...): the file was changed or replaced after "
            "it was saved. Re-download or re-train it."
        )


def load_model(
    path: str | os.PathLike,
    *,
    allow_h5: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    check_manifest: bool = True,
) -> keras.Model:
    """Load a model safely (see the module docstring for every check).

    Args:
        path: a ``.keras`` file (``.h5`` / ``.hdf5`` only with ``allow_h5=True``).
        allow_h5: opt in to the legacy HDF5 format (still inspected, still safe mode).
        max_bytes: refuse larger files before reading them.
        check_manifest: compare the SHA-256 with ``manifest.json`` beside the file.

    Raises:
        FileNotFoundError: no such file.
        ModelFileError (a ValueError): refused, with the reason and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No model file at {path}. Train one with `python -m kerasbn.compare` (models land "
            "in saved_models/) or pass the path of an existing .keras file."
        )
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"{path} is corrupted or truncated (empty file). Re-save it.")
    if size > max_bytes:
        raise ModelFileError(
            f"{path} is {size:,} bytes, over the {max_bytes:,}-byte cap. Pass a larger "
            "max_bytes only if you trust the file."
        )
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        if not allow_h5:
            raise ModelFileError(
                f"{path} is a legacy HDF5 model. Only the native .keras format is loaded by "
                "default; pass allow_h5=True (--allow-h5) if you trust the file, or re-save "
                "it as .keras."
            )
        _check_h5(path)
    elif suffix == ".keras":
        _check_keras_archive(path)
    else:
        raise ModelFileError(
            f"Only the native .keras format is loaded (safe mode). Received: {str(path)!r}"
        )
    if check_manifest:
        _check_manifest(path)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise ModelFileError(
            f"{path} is corrupted or truncated ({exc}). Re-save or re-download it."
        ) from exc


def export_saved_model(model: keras.Model | str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write a TensorFlow SavedModel for serving (``model.export``); the folder must be new.

    The served function takes uint8 images (N, H, W, C) and returns class probabilities.
    """
    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; pass a new folder.")
    check_output_folder(out_dir, "--out", create=False)  # before loading the model
    if not isinstance(model, keras.Model):
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
