"""Safe loading of model files that may come from anywhere.

:func:`load_model` inspects a file before Keras deserializes anything:

* it must be a regular file (not a device or FIFO) under a size cap, in the native
  ``.keras`` format (legacy ``.h5`` needs ``allow_h5=True``);
* in a ``.keras`` zip, the sizes the members declare must add up to less than the cap
  before any is inflated; then the CRC of every member is checked (the reads are bounded
  by those declared sizes) and ``config.json`` is read with its own cap;
* in an ``.h5``, every dataset's declared size counts against the cap, and external
  storage or links to other files are refused;
* the weights the architecture declares (:func:`declared_parameters`, from the config
  alone) must fit under the cap too, since building the layers allocates them;
* the SHA-256 must match ``manifest.json`` beside the file when there is one;
* the architecture may only name the Keras classes a kerasbn model is built from
  (:data:`ALLOWED_OBJECTS`): no ``Lambda``, no lambda or function object, no other
  module, no custom-registered object, no lookup layer reading a vocabulary file;
* then Keras loads it in safe mode. Anything Keras itself still refuses is reported as
  the same :class:`ModelFileError`.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path

import keras

from kerasbn._limits import ReadLimitError, check_declared, read_capped, require_regular_file
from kerasbn._paths import DEFAULT_MODEL_FOLDER, SHIPPED_MODEL_FOLDER, model_folders
from kerasbn.model_size import declared_parameters
from kerasbn.saving import MANIFEST_NAME, ModelFileError, read_manifest, sha256_file

__all__ = [
    "ALLOWED_OBJECTS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MODEL_FOLDER",
    "SHIPPED_MODEL_FOLDER",
    "check_model_config",
    "declared_parameters",
    "load_model",
    "model_folders",
    "resolve_model_name",
]

# The largest kerasbn model is a few MB; 512 MiB leaves room for much bigger user models
# while refusing absurd files (or archives that inflate to more) before anything is read.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
_MAX_CONFIG_BYTES = 16 * 1024 * 1024
_FIX = "pass a larger max_bytes only if you trust the file"

# module -> class names a kerasbn model's config may name (built-in kerasbn nets and
# the same shapes a user saves from them). Everything else is refused by name.
ALLOWED_OBJECTS: dict[str, frozenset[str]] = {
    "": frozenset({"__keras_tensor__"}),  # (module-less) references between layers
    "keras": frozenset({"Functional", "Sequential", "DTypePolicy", "FloatDTypePolicy"}),
    "keras.layers": frozenset(
        {
            "InputLayer",
            "Rescaling",
            "Conv2D",
            "Dense",
            "BatchNormalization",
            "GroupNormalization",
            "Dropout",
            "Activation",
            "ReLU",
            "MaxPooling2D",
            "GlobalAveragePooling2D",
            "Flatten",
            "RandomTranslation",
            "RandomFlip",
            "ZeroPadding2D",
            "RandomCrop",
        }
    ),
    "keras.initializers": frozenset(
        {"GlorotUniform", "HeNormal", "HeUniform", "Zeros", "Ones", "RandomNormal"}
    ),
    "keras.regularizers": frozenset({"L2", "L1", "L1L2"}),
    "keras.constraints": frozenset({"MaxNorm"}),
    "keras.src.models.functional": frozenset({"Functional"}),
    "keras.src.models.sequential": frozenset({"Sequential"}),
    # kerasbn's own pad-and-crop (identity at inference; its config is two numbers).
    "kerasbn.augmentation": frozenset({"RandomShift"}),
}
# Legacy .h5 configs name classes without a module: any allowed Keras class.
_ANY_KERAS_CLASS = frozenset().union(*ALLOWED_OBJECTS.values())
# Config keys that name a file Keras would read while building a layer.
_FILE_ARGUMENTS = ("vocabulary", "vocabulary_path", "filepath", "file_path")


def _refuse(origin: str, what: str) -> ModelFileError:
    return ModelFileError(
        f"{origin} {what}; kerasbn models never do, and loading it could run or read "
        "something outside the model. Refused. Only load such a file from a source you "
        "trust, with keras.saving.load_model(..., safe_mode=False)."
    )


def check_model_config(config, origin: str = "model") -> None:
    """Refuse an architecture that names anything a kerasbn model is not built from.

    Walks the serialized config (``config.json`` of a ``.keras`` file, or the
    ``model_config`` of an ``.h5``) and raises :class:`ModelFileError` for a class
    outside :data:`ALLOWED_OBJECTS` (``Lambda``, ``TFSMLayer``, any other module), a
    lambda, function or type-spec object, a custom-registered object, or a file
    argument. It reads only JSON; nothing is imported or executed.
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
        if class_name is not None:
            module = node.get("module")
            if class_name in ("Lambda", "TFSMLayer"):
                raise _refuse(origin, f"holds a {class_name} layer, which runs arbitrary code")
            if module is not None and module not in ALLOWED_OBJECTS:
                name = node.get("config", class_name)
                raise _refuse(origin, f"names {module}.{name!s} ({class_name}), outside Keras")
            if class_name in ("__lambda__", "function", "__typespec__", "__numpy__"):
                raise _refuse(origin, f"holds a serialized {class_name} object")
            allowed = _ANY_KERAS_CLASS if module is None else ALLOWED_OBJECTS[module]
            if class_name not in allowed:
                raise _refuse(origin, f"names {module}.{class_name}, not a kerasbn layer")
            registered = node.get("registered_name")
            # kerasbn's own layers are registered as kerasbn>Name; any other custom name
            # would make Keras look up an object this check has not seen.
            own = module is not None and module.startswith("kerasbn.")
            if (
                isinstance(registered, str)
                and ">" in registered
                and (not own or registered != f"kerasbn>{class_name}")
            ):
                raise _refuse(origin, f"needs the custom object {registered!r}")
        for key in _FILE_ARGUMENTS:
            if isinstance(node.get(key), str):
                raise _refuse(origin, f"names a file in its {key!r} argument")
        stack.extend(node.values())


def _check_keras_archive(path: Path, budget: int) -> None:
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path} is corrupted or truncated (not a valid .keras zip archive). Re-save or "
            "re-download it."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            check_declared(sum(m.file_size for m in members), f"{path} (inflated)", budget, _FIX)
            bad = archive.testzip()  # CRC of every member; reads stop at declared sizes
            if bad is not None:
                raise ModelFileError(f"{path} is corrupted or truncated (bad member {bad}).")
            if "config.json" not in archive.namelist():
                raise ModelFileError(
                    f"{path} is corrupted or truncated (no config.json inside). Re-save it."
                )
            with archive.open("config.json") as fh:
                raw = read_capped(fh, f"{path}:config.json", _MAX_CONFIG_BYTES, "re-save the model")
            config = json.loads(raw.decode("utf-8"))
        check_model_config(config, str(path))
        # Building the layers allocates their weights: count them from the config first.
        weights = 4 * declared_parameters(config)
        check_declared(weights, f"{path} (its layers' float32 weights)", budget, _FIX)
    except ReadLimitError as exc:
        raise ModelFileError(f"{exc}. Refused before inflating or building it.") from exc
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RecursionError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(
            f"{path} is corrupted or truncated ({exc}). Re-save or re-download it."
        ) from exc


def _check_h5_storage(h5, path: Path, budget: int) -> None:
    """Declared dataset sizes against the budget; no external storage, no links out."""
    import h5py

    total, groups = 0, [h5]
    while groups:
        group = groups.pop()
        for name in group:
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise _refuse(str(path), f"links {name!r} to another file")
            item = group.get(name)
            if isinstance(item, h5py.Group):
                groups.append(item)
            elif isinstance(item, h5py.Dataset):
                if item.external:
                    raise _refuse(str(path), f"keeps dataset {item.name!r} in external files")
                total += item.size * item.dtype.itemsize
                check_declared(total, f"{path} (its datasets)", budget, _FIX)


def _check_h5(path: Path, budget: int) -> None:
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            _check_h5_storage(h5, path, budget)
            raw = h5.attrs.get("model_config")
            if raw is None:
                raise ModelFileError(f"{path} holds weights only, no model (no model_config).")
            if isinstance(raw, bytes):
                raw = raw.decode("utf-8")
            config = json.loads(raw)
        check_model_config(config, str(path))
        weights = 4 * declared_parameters(config)
        check_declared(weights, f"{path} (its layers' float32 weights)", budget, _FIX)
    except ReadLimitError as exc:
        raise ModelFileError(f"{exc}. Refused before reading it.") from exc
    except (OSError, ValueError, RecursionError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path} is corrupted or truncated ({exc}).") from exc


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


def _saved_names() -> list[str]:
    names = []
    for folder in model_folders():
        try:
            names += list(read_manifest(folder)["models"])
        except ModelFileError:
            continue
    return list(dict.fromkeys(names))


def resolve_model_name(path: str | os.PathLike) -> Path:
    """``path`` itself, or for a bare name such as ``"cifar10-bn"`` that is no file,
    ``saved_models/cifar10-bn.keras`` (the zoo's default folder), else the shipped
    ``zoo/cifar10-bn.keras`` when only that one exists."""
    path = Path(path)
    bare = len(path.parts) == 1 and path.suffix.lower() not in (".keras", ".h5", ".hdf5")
    if bare and not os.path.lexists(path):
        candidates = [folder / f"{path.name}.keras" for folder in model_folders()]
        return next((c for c in candidates if os.path.lexists(c)), candidates[0])
    return path


def load_model(
    path: str | os.PathLike,
    *,
    allow_h5: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    check_manifest: bool = True,
) -> keras.Model:
    """Load a model safely (see the module docstring for every check).

    Args:
        path: a ``.keras`` file (``.h5`` / ``.hdf5`` only with ``allow_h5=True``), or
            the bare name of a model in ``saved_models/`` (``"cifar10-bn"``).
        allow_h5: opt in to the legacy HDF5 format (still inspected, still safe mode).
        max_bytes: refuse files larger than this, or whose contents declare more, before
            reading them.
        check_manifest: compare the SHA-256 with ``manifest.json`` beside the file.

    Raises:
        FileNotFoundError: no such file.
        ModelFileError (a ValueError): refused, with the reason and the fix.
    """
    path = resolve_model_name(path)
    if not os.path.lexists(path):
        names = ", ".join(sorted(f.removesuffix(".keras") for f in _saved_names()))
        raise FileNotFoundError(
            f"No model file at {path}. Pass a .keras path, or the name of a model in "
            f"{DEFAULT_MODEL_FOLDER}/ or the shipped zoo/ ({names or 'none yet'}); "
            "`python -m kerasbn.compare` saves one per variant in saved_models/."
        )
    try:
        require_regular_file(path)
    except ReadLimitError as exc:
        raise ModelFileError(str(exc)) from exc
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
        _check_h5(path, max_bytes)
    elif suffix == ".keras":
        _check_keras_archive(path, max_bytes)
    else:
        raise ModelFileError(
            f"Only the native .keras format is loaded (safe mode). Received: {str(path)!r}"
        )
    if check_manifest:
        _check_manifest(path)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # whatever Keras refuses or fails on is one refusal here
        raise ModelFileError(
            f"Keras could not load {path} ({type(exc).__name__}: {exc}). Re-save or "
            "re-download it, or load it with keras.saving.load_model if you trust it."
        ) from exc
