"""Loaders on tiny files of each format written here, and on the real data."""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kerasbn import DataError, get_dataset_info, load_dataset
from kerasbn.data import make_splits, read_idx

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------- writers of tiny files


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if gz else payload)


def write_mnist_folder(folder: Path, n_train=40, n_test=10, gz=True) -> tuple[np.ndarray, ...]:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = (
        RNG.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        RNG.integers(0, 10, n_train, dtype=np.uint8),
        RNG.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        RNG.integers(0, 10, n_test, dtype=np.uint8),
    )
    ext = ".gz" if gz else ""
    names = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    for name, array in zip(names, arrays, strict=True):
        write_idx(folder / f"{name}{ext}", array, gz=gz)
    return arrays


def cifar_arrays(n: int) -> tuple[np.ndarray, np.ndarray]:
    return RNG.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), RNG.integers(0, 10, n)


def chw_rows(images: np.ndarray) -> np.ndarray:
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def write_cifar_python(folder: Path, per_batch=6) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x, y = cifar_arrays(per_batch)
        with (folder / name).open("wb") as fh:
            # Protocol 2, bytes keys: what the official Python 2 pickles look like.
            pickle.dump({b"data": chw_rows(x), b"labels": y.tolist()}, fh, protocol=2)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def write_cifar_binary(folder: Path, per_batch=6) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        x, y = cifar_arrays(per_batch)
        records = np.concatenate([y[:, None].astype(np.uint8), chw_rows(x)], axis=1)
        (folder / name).write_bytes(records.tobytes())
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_image_tree(root: Path, per_class=(3, 1), fmt="png") -> None:
    for split, count in zip(("train", "test"), per_class, strict=True):
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(image).save(root / split / cls / f"{i:04d}.{fmt}")


# ----------------------------------------------------------------- formats


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_round_trip(tmp_path, gz):
    x_train, y_train, x_test, y_test = write_mnist_folder(tmp_path / "mnist", gz=gz)
    with pytest.warns(UserWarning, match="full mnist has 60000"):
        data = load_dataset("mnist", tmp_path, val_size=8)
    assert data.x_train.dtype == np.uint8 and data.x_train.shape == (32, 28, 28, 1)
    assert data.x_val.shape == (8, 28, 28, 1)
    np.testing.assert_array_equal(data.x_test[..., 0], x_test)
    np.testing.assert_array_equal(data.y_test, y_test)
    # Train + val together are exactly the original training set.
    merged = np.concatenate([data.x_train, data.x_val])[..., 0]
    assert sorted(map(bytes, merged)) == sorted(map(bytes, x_train))
    assert "IDX files" in data.source


def test_fashion_mnist_accepts_the_dashed_folder_name(tmp_path):
    write_mnist_folder(tmp_path / "fashion-mnist")
    with pytest.warns(UserWarning):
        data = load_dataset("fashion_mnist", tmp_path, val_size=5)
    assert data.class_names[0] == "T-shirt/top" and data.num_classes == 10


def test_cifar_python_batches(tmp_path):
    x, y = write_cifar_python(tmp_path / "cifar-10-batches-py")
    with pytest.warns(UserWarning):
        data = load_dataset("cifar10", tmp_path, val_size=5)
    np.testing.assert_array_equal(data.x_test, x[-6:])
    np.testing.assert_array_equal(data.y_test, y[-6:])
    assert data.x_train.shape == (25, 32, 32, 3) and data.x_val.shape == (5, 32, 32, 3)


def test_cifar_python_batch_never_runs_foreign_code(tmp_path):
    folder = tmp_path / "cifar10"
    write_cifar_python(folder)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with (folder / "data_batch_3").open("wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": [0]}, fh, protocol=2)
    with pytest.raises(
        DataError,
        match=r"data_batch_3 is not a safe CIFAR-10 python batch.*"
        r"refusing to load global",
    ):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


def test_cifar_binary_batches(tmp_path):
    x, y = write_cifar_binary(tmp_path / "cifar-10-batches-bin")
    with pytest.warns(UserWarning):
        data = load_dataset("cifar10", tmp_path, val_size=5)
    np.testing.assert_array_equal(data.x_test, x[-6:])
    np.testing.assert_array_equal(data.y_test, y[-6:])


def test_cifar_binary_truncated_names_the_file(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    write_cifar_binary(folder)
    blob = (folder / "data_batch_2.bin").read_bytes()
    (folder / "data_batch_2.bin").write_bytes(blob[:-100])
    with pytest.raises(DataError, match=r"data_batch_2\.bin is corrupted or truncated"):
        load_dataset("cifar10", tmp_path)


@pytest.mark.parametrize("packed", [False, True])
def test_image_tree_folder_and_archive(tmp_path, packed):
    tree = tmp_path / "tree"
    write_image_tree(tree)
    if packed:
        archive = tmp_path / "data" / "cifar10-jpeg.tar.gz"
        archive.parent.mkdir()
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(tree / "train", arcname="train")
            tar.add(tree / "test", arcname="test")
        data_dir = archive.parent
    else:
        (tmp_path / "data").mkdir()
        tree.rename(tmp_path / "data" / "cifar10")
        tree = tmp_path / "data" / "cifar10"
        data_dir = tmp_path / "data"
    with pytest.warns(UserWarning):
        data = load_dataset("cifar10", data_dir, val_size=5)
    assert data.class_names == tuple(CLASSES)
    assert data.x_test.shape == (10, 32, 32, 3)
    # Sorted class folders give labels 0..9; test has one image per class, shuffled once
    # with a fixed seed so that slices are not a single class.
    assert sorted(data.y_test) == list(range(10))
    assert list(data.y_test) != list(range(10))
    assert len(set(data.y_train[:8])) > 1
    assert len(data.x_train) + len(data.x_val) == 30


def test_image_tree_corrupt_and_wrong_shape_images_are_named(tmp_path):
    root = tmp_path / "cifar10"
    write_image_tree(root)
    bad = root / "train" / "cat" / "0001.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"0001\.png is corrupted or not an image"):
        load_dataset("cifar10", tmp_path)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(bad)
    with pytest.raises(DataError, match=r"0001\.png has shape \(16, 16, 3\), expected"):
        load_dataset("cifar10", tmp_path)


def test_image_tree_with_mismatched_classes(tmp_path):
    root = tmp_path / "cifar10"
    write_image_tree(root)
    (root / "test" / "truck").rename(root / "test" / "lorry")
    with pytest.raises(DataError, match="both need the same class folders"):
        load_dataset("cifar10", tmp_path)


# ----------------------------------------------------------------- errors


def test_missing_file_names_the_file_and_the_fix(tmp_path):
    write_mnist_folder(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"Missing file .*t10k-labels-idx1-ubyte\.gz.*--data-dir"):
        load_dataset("mnist", tmp_path)


def test_truncated_gzip_is_reported_as_corrupt(tmp_path):
    write_mnist_folder(tmp_path / "mnist")
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz is corrupted or truncated"):
        load_dataset("mnist", tmp_path)


def test_idx_payload_shorter_than_header_promises(tmp_path):
    path = tmp_path / "x.idx"
    write_idx(path, np.zeros((4, 28, 28), np.uint8), gz=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="header promises 3136 bytes"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x0d\x01abcd")  # float IDX, not MNIST's unsigned bytes
    with pytest.raises(DataError, match="bad magic number"):
        read_idx(path)


def test_label_out_of_range_and_count_mismatch(tmp_path):
    folder = tmp_path / "mnist"
    write_mnist_folder(folder)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.full(10, 12, np.uint8))
    with pytest.raises(DataError, match=r"labels range over 12\.\.12"):
        load_dataset("mnist", tmp_path)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(9, np.uint8))
    with pytest.raises(DataError, match="10 test images but 9 labels"):
        load_dataset("mnist", tmp_path)


def test_wrong_image_shape_for_the_dataset(tmp_path):
    write_mnist_folder(tmp_path / "mnist")
    with pytest.raises(DataError, match=r"No cifar10 data found"):
        load_dataset("cifar10", tmp_path)
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    for name in os.listdir(tmp_path / "mnist"):
        (folder / name).write_bytes((tmp_path / "mnist" / name).read_bytes())
    write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((40, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"have shape \(32, 32, 1\), but fashion_mnist"):
        load_dataset("fashion_mnist", tmp_path)


def test_missing_data_dir_and_empty_data_dir(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("mnist", tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"No mnist data found in .*KERASBN_DATA_DIR"):
        load_dataset("mnist", tmp_path)


def test_env_var_is_the_default_data_dir(tmp_path, monkeypatch):
    write_mnist_folder(tmp_path / "mnist")
    monkeypatch.setenv("KERASBN_DATA_DIR", str(tmp_path))
    with pytest.warns(UserWarning):
        assert load_dataset("mnist", val_size=4).source.startswith("IDX files")


def test_offline_without_local_data_fails_fast(tmp_path, monkeypatch):
    monkeypatch.delenv("KERASBN_DATA_DIR", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setenv("KERASBN_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(DataError, match=r"No local copy of mnist.*offline.*KERASBN_DATA_DIR"):
        load_dataset("mnist")
    assert time.monotonic() - start < 30


def test_validation_split_is_fixed_and_disjoint():
    x = np.arange(100)
    y = np.arange(100) % 10
    a = make_splits(x, y, 20)
    b = make_splits(x, y, 20)
    for left, right in zip(a, b, strict=True):
        np.testing.assert_array_equal(left, right)
    x_train, _, x_val, _ = a
    assert len(x_val) == 20 and not set(x_train) & set(x_val)
    assert list(x_train) == sorted(x_train)  # remaining training order is kept
    with pytest.raises(DataError):
        make_splits(x, y, 100)


def test_limit_keeps_the_first_examples_and_checks_bounds(digits):
    small = digits.limit(50)
    np.testing.assert_array_equal(small.x_train, digits.x_train[:50])
    assert len(small.x_val) == len(digits.x_val)
    with pytest.raises(ValueError, match="larger than the 1150 training examples"):
        digits.limit(5000)
    with pytest.raises(ValueError, match="positive"):
        digits.limit(0)


def test_digits_is_real_and_offline(digits):
    assert digits.x_train.dtype == np.uint8 and digits.input_shape == (8, 8, 1)
    assert digits.x_train.max() == 255
    total = len(digits.x_train) + len(digits.x_val) + len(digits.x_test)
    assert total == 1797


def test_unknown_dataset_name():
    with pytest.raises(
        ValueError,
        match=r"Valid datasets are: mnist, fashion_mnist, cifar10, "
        r"digits\. Received: 'imagenet'",
    ):
        get_dataset_info("imagenet")


# ----------------------------------------------------------------- real data


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_real_idx_sets(shared_data_dir, name):
    data = load_dataset(name, shared_data_dir)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (55_000, 5_000, 10_000)
    assert data.x_train.dtype == np.uint8 and data.input_shape == (28, 28, 1)
    assert set(np.unique(data.y_test)) == set(range(10))
    again = load_dataset(name, shared_data_dir)
    np.testing.assert_array_equal(data.y_val, again.y_val)


@pytest.mark.slow
def test_real_cifar10_jpeg_archive(shared_data_dir):
    data = load_dataset("cifar10", shared_data_dir)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (45_000, 5_000, 10_000)
    assert data.class_names[0] == "airplane" and data.class_names[-1] == "truck"
    # uint8 in memory: 60,000 x 32 x 32 x 3 bytes, about 184 MB, no float copy.
    total = data.x_train.nbytes + data.x_val.nbytes + data.x_test.nbytes
    assert data.x_train.dtype == np.uint8 and total == 60_000 * 3072


def test_network_probe_has_a_hard_deadline(monkeypatch):
    from kerasbn.data import sources

    monkeypatch.delenv("KERASBN_OFFLINE", raising=False)

    def stalled_connection(*args, **kwargs):
        time.sleep(5)  # a DNS lookup that hangs far past the deadline
        raise OSError("timed out")

    monkeypatch.setattr(sources.socket, "create_connection", stalled_connection)
    start = time.monotonic()
    assert sources.is_online(timeout=0.5) is False
    assert time.monotonic() - start < 5
