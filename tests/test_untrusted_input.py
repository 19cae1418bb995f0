"""Untrusted input, round two: every file kerasbn reads is bounded in memory and disk,
special files are refused instead of read forever, and each bad model or input gets one
clear refusal (issue 21). Every hostile file is crafted here and is small on disk; the
bombs that would exhaust memory on a regression run in a child process under an
address-space limit, so a regression fails instead of taking the machine down."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from kerasbn import ModelFileError, build_model, list_variants, load_model, save_model
from kerasbn.cli.predict import main as predict_main
from kerasbn.data import DataError
from kerasbn.data.catalog import get_dataset_info
from kerasbn.data.formats import read_cifar_python_batch, read_idx, read_image_tree
from kerasbn.loading import declared_parameters

ENV = {**os.environ, "KERASBN_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
GiB = 1 << 30


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    meta = {"dataset": "digits", "variant": "base", "class_names": [str(i) for i in range(10)]}
    return save_model(build_model("digits", "base"), folder / "digits-base.keras", meta)


@pytest.fixture
def deadline():
    """Fail a test that blocks (on a FIFO or a device) instead of hanging the suite."""

    def expired(signum, frame):
        raise TimeoutError("blocked reading a special file")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _limited(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a child process whose address space is capped at 4 GiB (importing
    TensorFlow needs about 3): a file read whole in memory would fail with MemoryError."""

    def cap() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (4 * GiB, 4 * GiB))

    return subprocess.run(
        [sys.executable, "-c", code], env=ENV, preexec_fn=cap, capture_output=True, text=True
    )


def _idx_header(dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


# ------------------------------------------------------------------ 1. bombs


def test_a_gzipped_idx_declaring_gigabytes_is_refused_from_its_header(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_header((60000, 4096, 4096)) + b"\0" * 100))
    with pytest.raises(DataError, match=r"declares 1,006,632,960,000 bytes.*KERASBN_MAX_READ"):
        read_idx(path)


def test_a_gzipped_idx_that_inflates_past_its_header_is_refused(tmp_path, monkeypatch):
    # The header promises 10 bytes; 50 MB of zeros follow (50 KB compressed).
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(_idx_header((10,)) + b"\0" * 50_000_000, compresslevel=1))
    with pytest.raises(DataError, match=r"promises 10 bytes .* holds 11\+"):
        read_idx(path)


def test_idx_dimensions_whose_product_overflows_int64_are_refused(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(_idx_header((2**32 - 1, 2**32 - 1, 2**32 - 1)))
    with pytest.raises(DataError, match=str(path.name)):
        read_idx(path)


def test_a_keras_archive_inflating_past_the_cap_is_refused_before_inflating(model_file, tmp_path):
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(model_file) as zin, zipfile.ZipFile(bomb, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, zin.read(item.filename))
        zout.writestr(zipfile.ZipInfo("padding.bin"), b"\0" * 30_000_000, zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(ModelFileError, match=r"bomb.keras \(inflated\) declares .*Refused before"):
        load_model(bomb, max_bytes=5_000_000, check_manifest=False)


def test_a_keras_config_json_bomb_never_reaches_memory():
    # A config.json of 1 GiB of spaces (1 MB compressed), over the default 512 MiB cap.
    code = """
import zipfile, tempfile, os
from kerasbn import load_model, ModelFileError
path = os.path.join(tempfile.mkdtemp(), "bomb.keras")
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
    with z.open("config.json", "w", force_zip64=True) as fh:
        chunk = b" " * (64 << 20)
        for _ in range(16):
            fh.write(chunk)
import resource
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_model(path, check_manifest=False)
except ModelFileError as exc:
    print("refused:", exc)
print("peak KiB:", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    done = _limited(code)
    assert "refused:" in done.stdout and "declares 1,073,741,824 bytes" in done.stdout, (
        done.stdout + done.stderr[-2000:]
    )
    peak_kib = int(done.stdout.split("peak KiB:")[1])
    assert peak_kib < 1 << 20  # loading the refused file raised the peak by under 1 GiB


@pytest.mark.parametrize("dataset", ["digits", "mnist", "cifar10"])
@pytest.mark.parametrize("variant", list_variants())
def test_declared_parameters_match_what_keras_builds(dataset, variant, tmp_path):
    model = build_model(dataset, variant)
    model.save(tmp_path / "m.keras")
    config = json.loads(zipfile.ZipFile(tmp_path / "m.keras").read("config.json"))
    assert declared_parameters(config) == model.count_params()


def test_nested_models_and_padding_are_counted_like_keras_builds_them(tmp_path):
    import keras
    from keras import layers

    inner = keras.Sequential([layers.Flatten(), layers.Dense(50), layers.BatchNormalization()])
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.ZeroPadding2D(((1, 2), (3, 0))),
            layers.Conv2D(4, 3),
            layers.RandomCrop(5, 6),
            inner,
            layers.Dense(10),
        ]
    )
    model.save(tmp_path / "m.keras")
    config = json.loads(zipfile.ZipFile(tmp_path / "m.keras").read("config.json"))
    # (8+3-2) x (8+3-2) x 4 -> crop 5 x 6 x 4 = 120 inputs to the nested Dense(50).
    assert declared_parameters(config) == model.count_params()
    # An enormous kernel declared inside the nested model is refused before building.
    config["config"]["layers"][-2]["config"]["layers"][-2]["config"]["units"] = 10**9
    with zipfile.ZipFile(tmp_path / "m.keras") as old, zipfile.ZipFile(
        tmp_path / "bomb.keras", "w"
    ) as new:
        for item in old.infolist():
            data = json.dumps(config) if item.filename == "config.json" else old.read(item)
            new.writestr(item, data)
    with pytest.raises(ModelFileError, match=r"float32 weights\) declares"):
        load_model(tmp_path / "bomb.keras", check_manifest=False)


def test_a_config_declaring_enormous_layers_is_refused_before_building(model_file, tmp_path):
    def enlarge(layers):
        dense = [layer for layer in layers if layer["class_name"] == "Dense"]
        dense[0]["config"]["units"] = 10**9  # 64 x 10^9 float32 weights: 256 GB

    path = _planted(model_file, tmp_path, enlarge)
    with pytest.raises(ModelFileError, match=r"float32 weights\) declares ([\d,]+) bytes") as info:
        load_model(path, check_manifest=False)
    assert "Refused before inflating or building it" in str(info.value)
    declared = int(re.search(r"declares ([\d,]+) bytes", str(info.value))[1].replace(",", ""))
    # Keras' own view of the first Dense layer's inputs: its kernel alone is that x 10^9.
    features = next(lay for lay in build_model("digits", "base").layers if "dense" in lay.name)
    assert declared >= 4 * 10**9 * features.kernel.shape[0]


def test_an_h5_dataset_declaring_gigabytes_is_refused_unread(tmp_path):
    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {}})
        h5.create_dataset("weights", shape=(100_000, 100_000), dtype="f4", chunks=(100, 100))
    assert path.stat().st_size < 100_000  # no chunk is stored
    with pytest.raises(ModelFileError, match=r"declares 40,000,000,000 bytes"):
        load_model(path, allow_h5=True)


def test_an_h5_with_external_storage_or_links_is_refused(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"\0" * 64)
    external = tmp_path / "external.h5"
    with h5py.File(external, "w") as h5:
        h5.create_dataset("w", shape=(16,), dtype="f4", external=[(str(outside), 0, 64)])
    with pytest.raises(ModelFileError, match="external files"):
        load_model(external, allow_h5=True)
    linked = tmp_path / "linked.h5"
    with h5py.File(linked, "w") as h5:
        h5["w"] = h5py.ExternalLink(str(external), "/w")
    with pytest.raises(ModelFileError, match="links 'w' to another file"):
        load_model(linked, allow_h5=True)


def test_a_tar_member_over_the_read_limit_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASBN_MAX_READ_BYTES", "1000000")
    path = tmp_path / "tree.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("train/0/a.png")
        info.size = 20_000_000
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    with pytest.raises(DataError, match=r"tree.tar.gz:train/0/a.png declares 20,000,000 bytes"):
        read_image_tree(path, get_dataset_info("cifar10"))


def _tar_with_member_size(path: Path, size_field: bytes) -> None:
    """A tar of one image member whose header's size field is ``size_field``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("train/0/a.png")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"\x89PNG"))
    data = bytearray(raw.getvalue())
    data[124:136] = size_field
    data[148:156] = b"        "  # the checksum counts its own field as spaces
    data[148:156] = b"%06o\0 " % sum(data[:512])
    path.write_bytes(bytes(data))


def test_a_tar_member_with_a_negative_size_is_refused_not_looped_on(tmp_path):
    # A negative size in base-256 (here -512, back over its own header): the way into
    # the endless loop of CVE-2025-8194, unfixed in Python 3.11.7. Any negative size is
    # refused; the alarm turns a loop into a failure instead of a hung test run.
    path = tmp_path / "tree.tar"
    _tar_with_member_size(path, b"\xff" + (2**88 - 512).to_bytes(11, "big"))

    def hung(*_):
        raise AssertionError("reading the archive did not end")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        with pytest.raises(DataError, match="declares a negative size"):
            read_image_tree(path, get_dataset_info("cifar10"))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_tar_extended_header_declaring_megabytes_is_refused(tmp_path):
    path = tmp_path / "tree.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("train/0/a.png")
        info.pax_headers = {"comment": "x" * 3_000_000}  # 3 MB of header, 3 KB on disk
        info.size = 4
        tar.addfile(info, io.BytesIO(b"\x89PNG"))
    assert path.stat().st_size < 100_000
    with pytest.raises(DataError, match=r"an extended header declares 3,000,\d{3} bytes"):
        read_image_tree(path, get_dataset_info("cifar10"))


def test_cifar_labels_nested_through_the_pickle_memo_are_refused(tmp_path):
    inner = [0] * 100
    labels = [[inner] * 100] * 1000  # 30 KB pickled; 80 MB as an int64 array
    data = np.zeros((1000, 3072), np.uint8)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=2))
    assert path.stat().st_size < 4_000_000
    with pytest.raises(DataError, match="'labels' is not a list of 1,000 class numbers"):
        read_cifar_python_batch(path)
    # The sound shape reads.
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [3] * 1000}, protocol=2))
    assert read_cifar_python_batch(path)[1].tolist() == [3] * 1000


def _pickle_calling(func, *args) -> bytes:
    class Call:
        def __reduce__(self):
            return func, args

    return pickle.dumps({b"data": Call(), b"labels": [0]}, protocol=2)


def test_a_cifar_pickle_allocating_a_huge_array_is_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(_pickle_calling(np.ndarray, (10**6, 10**6)))
    with pytest.raises(DataError, match=r"not a safe CIFAR-10 python batch.*declares"):
        read_cifar_python_batch(path)


def test_a_cifar_pickle_amplifying_a_string_is_refused(tmp_path):
    import codecs

    path = tmp_path / "data_batch_1"
    path.write_bytes(_pickle_calling(codecs.encode, b"ab", "hex"))
    with pytest.raises(DataError, match=r"refusing _codecs.encode with 'hex'"):
        read_cifar_python_batch(path)


# ------------------------------------------------------------------ 2. special files


def test_a_manifest_that_links_to_a_device_is_refused(model_file, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    copy = folder / model_file.name
    copy.write_bytes(model_file.read_bytes())
    (folder / "manifest.json").symlink_to("/dev/zero")
    # In a child under the memory cap: reading /dev/zero whole would never end.
    done = _limited(
        "from kerasbn import load_model, ModelFileError\n"
        f"try:\n    load_model({str(copy)!r})\n"
        "except ModelFileError as exc:\n    print('refused:', exc)\n"
    )
    assert "manifest.json is a device, not a regular file" in done.stdout, done.stderr[-2000:]


def test_a_fifo_named_like_a_tree_archive_is_refused(tmp_path, deadline):
    fifo = tmp_path / "cifar10.tar.gz"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="cifar10.tar.gz is a FIFO, not a regular file"):
        read_image_tree(fifo, get_dataset_info("cifar10"))


def test_a_model_that_is_a_fifo_is_refused(tmp_path, deadline):
    fifo = tmp_path / "model.keras"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="is a FIFO, not a regular file"):
        load_model(fifo)


def test_an_image_tree_with_a_device_link_is_refused(tmp_path):
    for split in ("train", "test"):
        for cls in range(10):
            folder = tmp_path / split / str(cls)
            folder.mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
    (tmp_path / "train" / "3" / "b.png").symlink_to("/dev/zero")
    done = _limited(
        "from kerasbn.data import DataError\n"
        "from kerasbn.data.catalog import get_dataset_info\n"
        "from kerasbn.data.formats import read_image_tree\n"
        f"try:\n    read_image_tree({str(tmp_path)!r}, get_dataset_info('digits'))\n"
        "except DataError as exc:\n    print('refused:', exc)\n"
    )
    assert "b.png is a device, not a regular file" in done.stdout, done.stderr[-2000:]


# ------------------------------------------------------------------ 3. one refusal


def _planted(model_file: Path, tmp_path: Path, plant) -> Path:
    out = tmp_path / "planted.keras"
    with zipfile.ZipFile(model_file) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                plant(config["config"]["layers"])
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return out


@pytest.mark.parametrize(
    "node, reason",
    [
        (
            {"module": "keras.utils", "class_name": "function", "config": "get_file"},
            r"names keras.utils.get_file \(function\), outside Keras",
        ),
        (
            {"module": "keras.src.utils.file_utils", "class_name": "function", "config": "x"},
            "outside Keras",
        ),
        ({"class_name": "__lambda__", "config": {"code": "..."}}, "serialized __lambda__"),
        (
            {
                "module": "keras.layers",
                "class_name": "StringLookup",
                "config": {"vocabulary": "/etc/passwd"},
            },
            "StringLookup, not a kerasbn layer",
        ),
        (
            {
                "module": "keras.layers",
                "class_name": "Dense",
                "config": {"vocabulary": "/etc/passwd"},
            },
            "names a file in its 'vocabulary' argument",
        ),
    ],
    ids=["get_file", "keras.src", "lambda", "lookup-layer", "file-argument"],
)
def test_what_keras_would_refuse_is_refused_by_kerasbn_first(model_file, tmp_path, node, reason):
    path = _planted(model_file, tmp_path, lambda layers: layers[-1]["config"].update(x=node))
    with pytest.raises(ModelFileError, match=reason):
        load_model(path, check_manifest=False)


def test_a_model_keras_itself_fails_on_is_one_refusal_with_exit_2(model_file, tmp_path, capsys):
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(model_file) as zin, zipfile.ZipFile(broken, "w") as zout:
        for item in zin.infolist():
            if item.filename != "model.weights.h5":  # passes every check, fails in Keras
                zout.writestr(item, zin.read(item.filename))
    with pytest.raises(ModelFileError, match="Keras could not load"):
        load_model(broken, check_manifest=False)
    with pytest.raises(SystemExit) as info:
        predict_main(["--model", str(broken), str(tmp_path)])
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "content",
    [
        {"format": 1, "models": {"digits-base.keras": ["not", "an", "object"]}},
        "[" * 100_000 + "]" * 100_000,
        b"\xff\xfe not utf-8",
    ],
    ids=["entry-not-an-object", "deeply-nested", "not-utf-8"],
)
def test_a_malformed_manifest_is_a_model_file_error(model_file, tmp_path, content):
    folder = tmp_path / "models"
    folder.mkdir()
    copy = folder / model_file.name
    copy.write_bytes(model_file.read_bytes())
    raw = content if isinstance(content, bytes | str) else json.dumps(content)
    (folder / "manifest.json").write_bytes(raw.encode() if isinstance(raw, str) else raw)
    with pytest.raises(ModelFileError, match=r"manifest.json is corrupted"):
        load_model(copy)


def test_a_cifar_batch_of_the_wrong_dtype_is_a_data_error(tmp_path):
    path = tmp_path / "data_batch_1"
    batch = {b"data": np.zeros((2, 3072), np.float64), b"labels": [0, 1]}
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=r"'data' is float64 of shape \(2, 3072\), expected uint8"):
        read_cifar_python_batch(path)


# ------------------------------------------------------------------ 4. predict reports all


def test_predict_names_every_bad_input_and_predicts_the_rest(
    model_file, tmp_path, capsys, monkeypatch, deadline
):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(inputs / "good.png")
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(inputs / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 100x100 is "a bomb" now
    with (inputs / "huge.npy").open("wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}
        )
    np.save(inputs / "empty.npy", np.zeros((0, 8, 8), np.uint8))
    os.mkfifo(inputs / "pipe.npy")
    odd = os.fsdecode(b"odd\xff\x1b[31m.png")  # undecodable byte and a terminal escape
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(inputs / odd)
    code = predict_main(["--model", str(model_file), str(inputs)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "good.png" in out and "odd\\udcff\\x1b[31m.png" in out
    assert "\x1b" not in out + err
    for name, why in [
        ("bomb.png", "is not a readable image"),
        ("huge.npy", "declares 4,000,000,000,000 bytes"),
        ("empty.npy", "empty array (0, 8, 8)"),
        ("pipe.npy", "is a FIFO, not a regular file"),
    ]:
        assert any(name in line and why in line for line in err.splitlines()), (name, err)


def test_predict_prints_odd_names_under_a_strict_utf8_locale(model_file, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(inputs / os.fsdecode(b"x\xff.png"))
    env = {**ENV, "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8:strict", "PYTHONUTF8": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "kerasbn.predict", "--model", str(model_file), str(inputs)],
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "x\\udcff.png" in done.stdout


# ------------------------------------------------------------------ 5. image trees


def test_an_image_over_the_data_sets_pixels_in_a_tree_is_refused_before_decoding(tmp_path):
    info = get_dataset_info("digits")
    for split in ("train", "test"):
        for cls in range(10):
            folder = tmp_path / split / str(cls)
            folder.mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((512, 512), np.uint8)).save(tmp_path / "test" / "7" / "big.png")
    with pytest.raises(DataError, match=r"big.png .*512x512 pixels, more than the 64 allowed"):
        read_image_tree(tmp_path, info)


def test_an_image_over_kerasbns_pixel_budget_is_refused_from_its_header(tmp_path):
    from PIL import Image

    from kerasbn.images import PIXEL_BUDGET, decode_image

    side = int(PIXEL_BUDGET**0.5) + 1  # just over the budget, well under Pillow's limit
    path = tmp_path / "big.png"
    Image.new("L", (side, side)).save(path)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ValueError, match=f"{side}x{side} pixels, more than the 40,000,000"):
        decode_image(path)


def test_a_resize_too_large_is_refused_before_allocating(tmp_path):
    # Two million 1x1 images resized to 28x28 would take 1.57 GB; a 12,000^2 image is over
    # the pixel budget. Run apart, so that the peak memory is this case's own.
    script = (
        "import resource, numpy as np\n"
        "from kerasbn.inference import prepare_images\n"
        "many = np.zeros((2_000_000, 1, 1, 1), np.uint8)\n"
        "huge = np.ones((1, 12_000, 12_000), np.uint8)\n"  # 144 MB, touched
        "print('before KiB:', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        "for images in (many, huge):\n"
        "    try:\n"
        "        prepare_images(images, (28, 28, 1), resize=True)\n"
        "    except ValueError as exc:\n"
        "        print('refused:', exc)\n"
        "print('after KiB:', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    refused = [line for line in done.stdout.splitlines() if line.startswith("refused:")]
    assert len(refused) == 2, done.stdout
    assert "needs 1,568,000,000 bytes" in refused[0] and "fewer images" in refused[0]
    assert "12000x12000 pixels, more than the 40,000,000" in refused[1]
    # The peak after the imports and the test arrays grew by far less than a resized
    # batch (1.5 GB) would take: nothing was allocated for it.
    before = int(done.stdout.split("before KiB:")[1].split()[0])
    after = int(done.stdout.split("after KiB:")[1].split()[0])
    assert after - before < 300_000, (before, after)


def _archived_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    shutil.copytree(Path(__file__).parent.parent / "results" / "readme-digits", folder)
    return folder


def test_a_run_table_with_a_non_number_is_named_with_exit_2(tmp_path, capsys):
    from kerasbn.cli.results import main as results_main

    folder = _archived_copy(tmp_path)
    runs = (folder / "runs.csv").read_text().splitlines()
    header = runs[0].split(",")
    cells = runs[1].split(",")
    cells[header.index("test_accuracy")] = "\x1b]0;pwned\x07abc"
    (folder / "runs.csv").write_text("\n".join([runs[0], ",".join(cells), *runs[2:]]) + "\n")
    with pytest.raises(SystemExit) as info:
        results_main([str(folder)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"{folder / 'runs.csv'}: column 'test_accuracy' holds" in err
    assert "where a number belongs" in err and "Traceback" not in err
    assert not [c for c in err if ord(c) < 0x20 and c not in "\n\t"]


def test_an_epoch_log_that_is_a_fifo_is_refused_not_waited_on(tmp_path, capsys):
    from kerasbn.cli.bench import main as bench_main

    folder = _archived_copy(tmp_path)
    log = sorted((folder / "logs").glob("*.csv"))[0]
    log.unlink()
    os.mkfifo(log)

    def hung(*_):
        raise AssertionError("the FIFO was opened and waited on")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        code = bench_main(["--time-to-accuracy", "--from-run", str(folder)])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert code == 2
    err = capsys.readouterr().err
    assert str(log) in err and "not a regular file" in err
