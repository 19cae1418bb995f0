"""Your own images: a folder of class folders or tfds:NAME as a data set (issue 34)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from kerasbn.data import DATASETS, DataError, load_dataset
from kerasbn.presets import PRESETS, get_preset

CLASSES = ("cat", "dog", "fox")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """A cache per test, and the registry as it was afterwards."""
    monkeypatch.setenv("KERASBN_CACHE", str(tmp_path / "cache"))
    yield
    from kerasbn.data import user

    for name in [n for n, info in DATASETS.items() if info.bundled == "user"]:
        PRESETS.unregister(name)  # its key is looked up through DATASETS
        DATASETS.unregister(name)
        user._LOADED.pop(name, None)


def _save(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_tree(root: Path, per_class: int = 8, seed: int = 0) -> dict:
    """Three classes of colour images, PNG and JPEG, 30-50 pixels a side; one grayscale
    PNG, one corrupt JPEG, one oversized PNG, one text file. Returns what was written."""
    rng = np.random.default_rng(seed)
    pngs = {}
    for c, cls in enumerate(CLASSES):
        for i in range(per_class):
            # A class-dependent mean colour, so that a net can learn something.
            array = np.clip(rng.normal(60 + 70 * c, 30, (30 + 2 * i, 40, 3)), 0, 255)
            array = array.astype(np.uint8)
            path = root / cls / f"img{i}.{'png' if i % 2 else 'jpg'}"
            _save(path, array)
            if i % 2:
                pngs[path] = array
    _save(root / "cat" / "gray.png", rng.integers(0, 256, (32, 32), dtype=np.uint8))
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a JPEG")
    _save(root / "fox" / "huge.png", np.zeros((120, 120, 3), np.uint8))
    (root / "fox" / "notes.txt").write_text("not an image")
    sides = [min(30 + 2 * i, 40) for i in range(per_class)] * 3 + [32]  # shorter sides
    return {"pngs": pngs, "readable": 3 * per_class + 1, "sides": sides}


@pytest.fixture
def tree(tmp_path, monkeypatch):
    from kerasbn.data import folders

    # "Oversized" for this test: over 100x100 pixels (the real limit is 40 million).
    monkeypatch.setattr(folders, "MAX_IMAGE_PIXELS", 100 * 100)
    root = tmp_path / "My Pets"
    return root, write_tree(root)


def test_tree_loads_with_inferred_row_skips_and_split(tree):
    root, written = tree
    data = load_dataset(str(root))
    meta = data.metadata
    assert data.name == "my_pets"
    assert data.class_names == CLASSES  # sorted folder names
    # The median shorter side of the readable images is 36 -> the 32 template.
    assert np.median(written["sides"]) == 36 and data.input_shape == (32, 32, 3)
    assert meta["skipped"] == {"unreadable": 1, "oversized": 1}
    assert meta["converted"] == {"grayscale to RGB": 1}
    n = written["readable"]
    n_test = math.ceil(0.2 * n)  # scikit-learn rounds the test share up
    n_val = round(0.1 * (n - n_test))
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (
        n - n_test - n_val,
        n_val,
        n_test,
    )
    assert set(np.unique(data.y_test)) == {0, 1, 2}  # stratified: every class in test
    assert "20% of each class to test" in meta["split"]
    # The catalog row and the preset exist under the short name, built from the images.
    info = DATASETS.lookup("my_pets")
    assert info.image_shape == (32, 32, 3) and info.class_names == CLASSES
    preset = get_preset("my_pets")
    assert preset.training["batch_size"] == 32 and preset.augment
    assert preset.training["epochs"] == 200  # 1 step per epoch: at most 200 for 1,500
    # Every image is a resized copy of a written one: a 30x40 PNG resized to 32x32
    # equals Pillow's bilinear resize of the same pixels, found somewhere in the splits.
    from PIL import Image

    path, array = next((p, a) for p, a in written["pngs"].items() if p.parent.name == "fox")
    expected = np.asarray(Image.fromarray(array).resize((32, 32), Image.Resampling.BILINEAR))
    everything = np.concatenate([data.x_train, data.x_val, data.x_test])
    labels = np.concatenate([data.y_train, data.y_val, data.y_test])
    hits = np.flatnonzero((everything == expected).all(axis=(1, 2, 3)))
    assert len(hits) == 1 and labels[hits[0]] == CLASSES.index("fox")


def test_second_load_comes_from_the_cache(tree, monkeypatch):
    root, _ = tree
    first = load_dataset(str(root))
    from kerasbn.data import folders

    def no_decoding(*args, **kwargs):
        raise AssertionError("the images were decoded again")

    monkeypatch.setattr(folders, "decode_tree", no_decoding)
    monkeypatch.setattr("kerasbn.data.user.decode_tree", no_decoding)
    second = load_dataset(str(root))
    assert np.array_equal(first.x_train, second.x_train)
    assert second.metadata == first.metadata
    # A changed tree (one image more) is a new key: decoded again.
    _save(root / "dog" / "new.png", np.full((40, 40, 3), 7, np.uint8))
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset(str(root))


def test_damaged_cache_is_rebuilt(tree):
    root, _ = tree
    first = load_dataset(str(root))
    cached = next((Path(os.environ["KERASBN_CACHE"]) / "datasets").iterdir())
    (cached / "x_train.npy").write_bytes(b"\x93NUMPY garbage")
    again = load_dataset(str(root))
    assert np.array_equal(first.x_train, again.x_train)


def test_train_test_layout_and_grayscale_tree(tmp_path):
    rng = np.random.default_rng(1)
    for split, count in (("train", 6), ("test", 2)):
        for cls in ("a", "b"):
            for i in range(count):
                image = rng.integers(0, 256, (64, 70), dtype=np.uint8)
                _save(tmp_path / "digits" / split / cls / f"{i}.png", image)
    data = load_dataset(str(tmp_path / "digits"))
    assert data.name == "digits_folder"  # "digits" is a built-in set
    assert data.input_shape == (64, 64, 1)  # all grayscale: one channel; 64 is nearest
    assert (len(data.x_train) + len(data.x_val), len(data.x_test)) == (12, 4)
    assert data.metadata["layout"] == "train/test"
    assert not get_preset("digits_folder").augment  # no flips for grayscale sets


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: (root / "empty").mkdir(), "holds no JPEG or PNG"),
        (lambda root: [p.unlink() for p in (root / "dog").iterdir()], "holds no JPEG or PNG"),
        (lambda root: None, "at least two"),
    ],
    ids=["empty-class-folder", "emptied-class-folder", "one-class"],
)
def test_bad_trees_exit_2_before_training(tmp_path, capsys, make, message):
    from kerasbn.cli.compare import main

    root = tmp_path / "set"
    for cls in ("cat", "dog") if message != "at least two" else ("cat",):
        for i in range(5):
            _save(root / cls / f"{i}.png", np.full((32, 32, 3), i, np.uint8))
    make(root)
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", str(root), "--epochs", "1", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_tree_over_the_read_limit_is_refused(tree, tmp_path, capsys, monkeypatch):
    from kerasbn.cli.compare import main

    root, _ = tree
    monkeypatch.setenv("KERASBN_MAX_READ_BYTES", "5000")
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", str(root), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "over the 5,000-byte read limit" in capsys.readouterr().err


def test_a_class_too_small_to_split_is_refused(tmp_path):
    for cls, count in (("a", 6), ("b", 3)):
        for i in range(count):
            _save(tmp_path / "s" / cls / f"{i}.png", np.full((32, 32, 3), i, np.uint8))
    with pytest.raises(DataError, match="'b' has 3 readable images; each class needs at least 5"):
        load_dataset(str(tmp_path / "s"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "tfds:imdb_reviews"], "not an image-classification set"),
        (["--dataset", "tfds:no_such_set_here"], "has no data set 'no_such_set_here'"),
        (["--dataset", "mnist", "--image-size", "32"], "applies to your own folder"),
        (["--dataset", "no_such_name"], "Valid datasets are"),
    ],
)
def test_bad_dataset_arguments_exit_2(tmp_path, capsys, argv, message):
    from kerasbn.cli.compare import main

    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_unsupported_image_size_is_refused_by_the_parser(tmp_path, capsys):
    from kerasbn.cli.compare import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", str(tmp_path), "--image-size", "48"])
    assert exit_info.value.code == 2
    assert "invalid choice: 48" in capsys.readouterr().err


def test_tfds_image_set_from_tensorflow_datasets(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr("kerasbn.data.sources.is_online", lambda: True)
    with tfds.testing.mock_data(num_examples=12):
        data = load_dataset("tfds:beans")
    assert data.name == "beans"
    # beans' label names come from its features, its 500x500 images shrink to the cap.
    assert data.class_names == ("angular_leaf_spot", "bean_rust", "healthy")
    assert data.input_shape == (96, 96, 3)
    assert len(data.x_test) == 12 and len(data.x_train) + len(data.x_val) == 12
    assert get_preset("beans").blocks[-1] == (256,)


def test_worker_rebuilds_the_row_from_the_data(tree):
    from kerasbn.data.user import register_from_metadata

    root, _ = tree
    data = load_dataset(str(root))
    preset = get_preset(data.name)
    PRESETS.unregister(data.name)
    DATASETS.unregister(data.name)
    register_from_metadata(data.name, data.class_names, data.input_shape, data.metadata)
    assert get_preset(data.name) == preset
    assert DATASETS.lookup(data.name).class_names == CLASSES


def test_compare_on_a_tree_end_to_end(tree, tmp_path, capsys):
    """compare --dataset <tree> trains and saves; the saved model names the tree's
    classes (load_model, predict)."""
    import kerasbn
    from kerasbn.cli.compare import main
    from kerasbn.cli.predict import main as predict
    from kerasbn.inference import class_names_for

    root, written = tree
    out, models = tmp_path / "out", tmp_path / "models"
    argv = ["--dataset", str(root), "--variants", "base,bn", "--epochs", "2", "--verbose", "0"]
    assert main([*argv, "--out", str(out), "--save-models", str(models)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"]["name"] == "my_pets"
    assert config["dataset"]["spec"] == str(root)
    assert config["dataset"]["inferred"]["image_size"].startswith("32:")
    summary = (out / "summary.md").read_text()
    assert "### Your data set: what kerasbn chose" in summary and "1 oversized" in summary
    model_path = models / "my_pets-bn.keras"
    model = kerasbn.load_model(model_path)
    assert model.input_shape == (None, 32, 32, 3)
    assert class_names_for(model_path, 3) == list(CLASSES)
    capsys.readouterr()
    image = next(iter(written["pngs"]))
    assert predict(["--model", str(model_path), "--resize", str(image)]) == 0
    printed = capsys.readouterr().out
    assert sum(name in printed for name in CLASSES) == 3  # top 3 of 3 classes, by name
    # In a fresh process the row is gone; the results table still reads the folder.
    from kerasbn.cli.results import main as results

    PRESETS.unregister("my_pets")
    DATASETS.unregister("my_pets")
    assert results([str(out), "--table", "headline"]) == 0
    assert "my_pets" in capsys.readouterr().out


def test_arrays_in_memory_are_split_as_a_folder_is():
    from kerasbn.data.user import register_arrays

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    labels = np.repeat([0, 1, 2], 10)
    name = register_arrays("Mine", images, labels, CLASSES, source="three test classes")
    data = load_dataset(name)
    assert name == "mine" and data.source == "three test classes"
    assert (len(data.x_train) + len(data.x_val), len(data.x_test)) == (24, 6)  # 20% to test
    assert sorted(np.unique(data.y_test, return_counts=True)[1]) == [2, 2, 2]  # stratified
    everything = np.concatenate([data.x_train, data.x_val, data.x_test])
    assert sorted(map(bytes, everything)) == sorted(map(bytes, images))  # the same images
    with pytest.raises(ValueError, match="32, 64, 96 pixels"):
        register_arrays("odd", images[:, :28, :28], labels, CLASSES, source="x")


def test_a_script_of_the_checkout_is_recorded_as_its_command(monkeypatch):
    import kerasbn
    from kerasbn._versions import command_line

    script = Path(kerasbn.__file__).resolve().parents[1] / "scripts" / "cifar10_test_builtin.py"
    monkeypatch.setattr("sys.argv", [str(script), "--seeds", "3"])
    assert command_line("kerasbn.compare") == "python scripts/cifar10_test_builtin.py --seeds 3"
    monkeypatch.setattr("sys.argv", ["/elsewhere/tool.py", "--seeds", "3"])
    assert command_line("kerasbn.compare") is None


def test_data_table_lists_the_choices_of_a_folder(tmp_path):
    """results --table data reads what was chosen from config.json: the values a run
    recorded, and a built-in set's folder is refused."""
    from kerasbn.results_tables import data_markdown

    run = tmp_path / "run"
    run.mkdir()
    dataset = {
        "name": "pets",
        "source": "image folder pets",
        "train": 90, "val": 10, "test": 25,
        "split": "20% of each class to test",
        "skipped": {"unreadable": 2},
        "converted": {},
        "inferred": {"image_size": "32: nearest", "epochs": "200: at least 1,500 updates"},
    }
    used = {"epochs": 7, "batch_size": 32, "learning_rate": 0.0025}
    config = {"dataset": dataset, "train_config": used}
    (run / "config.json").write_text(json.dumps(config))
    (run / "complete.json").write_text("{}")
    table = data_markdown([run])
    assert "| skipped" in table and "2 unreadable" in table
    assert "7 epochs, batch 32, rate 0.0025" in table and "200: at least 1,500 updates" in table
    dataset.pop("inferred")
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="built-in data set"):
        data_markdown([run])


def _export_script():
    import importlib.util

    import kerasbn

    path = Path(kerasbn.__file__).resolve().parents[1] / "scripts" / "export_image_tree.py"
    spec = importlib.util.spec_from_file_location("export_image_tree", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cifar10_test_set_read_from_a_folder_is_the_same_images(shared_data_dir, tmp_path):
    """The published folder run: the built-in loader's 10,000 test images written as
    PNGs and read back through --dataset PATH are the same pixels, class by class."""
    tree = tmp_path / "cifar10-test"
    argv = ["cifar10-test", str(tree), "--data-dir", str(shared_data_dir)]
    assert _export_script().main(argv) == 0
    data = load_dataset(str(tree))
    reference = load_dataset("cifar10", shared_data_dir)
    assert data.class_names == reference.class_names
    images = np.concatenate([data.x_train, data.x_val, data.x_test])
    labels = np.concatenate([data.y_train, data.y_val, data.y_test])
    for label in range(10):
        ours = sorted(map(bytes, images[labels == label]))
        theirs = sorted(map(bytes, reference.x_test[reference.y_test == label]))
        assert ours == theirs
