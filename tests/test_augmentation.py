"""RandomShift (pad-and-crop) against a NumPy pad-and-slice reference."""

import keras
import numpy as np
import pytest

from kerasbn.augmentation import RandomShift, shift_matrices
from kerasbn.loading import load_model
from kerasbn.models import build_model

PAD = 4


def pad_and_crop(image, dy, dx):
    """The textbook augmentation: zero-pad by PAD, then take the window whose content
    moved by (dy, dx)."""
    h, w = image.shape[:2]
    padded = np.pad(image, ((PAD, PAD), (PAD, PAD), (0, 0)))
    return padded[PAD - dy : PAD - dy + h, PAD - dx : PAD - dx + w]


def test_shift_matrices_move_entries_and_shift_in_zeros():
    vector = np.arange(1.0, 7.0)  # 1..6
    matrices = keras.ops.convert_to_numpy(shift_matrices(np.array([-2, 0, 3]), 6))
    np.testing.assert_array_equal(matrices[0] @ vector, [3, 4, 5, 6, 0, 0])
    np.testing.assert_array_equal(matrices[1] @ vector, vector)
    np.testing.assert_array_equal(matrices[2] @ vector, [0, 0, 0, 1, 2, 3])


def test_every_training_output_is_a_pad_and_crop_of_its_input_with_all_shifts_drawn():
    images = np.random.default_rng(0).random((256, 12, 10, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(RandomShift(PAD, seed=3)(images, training=True))
    shifts = [(dy, dx) for dy in range(-PAD, PAD + 1) for dx in range(-PAD, PAD + 1)]
    drawn = []
    for image, result in zip(images, out, strict=True):
        matches = [s for s in shifts if np.array_equal(result, pad_and_crop(image, *s))]
        assert len(matches) == 1, "output is no pad-and-crop of its input"
        drawn.append(matches[0])
    # Uniform over [-4, 4] per axis: with 256 images each of the 9 values shows up
    # (a miss has probability about 9 x (8/9)^256 = 7e-13).
    assert {dy for dy, _ in drawn} == set(range(-PAD, PAD + 1))
    assert {dx for _, dx in drawn} == set(range(-PAD, PAD + 1))


def test_identity_at_inference_and_with_zero_pixels_and_same_seed_same_draws():
    images = np.random.default_rng(1).random((4, 8, 8, 1)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(RandomShift(4)(images)), images)
    zero = RandomShift(0)(images, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(zero), images)
    first = RandomShift(2, seed=5)(images, training=True)
    again = RandomShift(2, seed=5)(images, training=True)
    as_numpy = keras.ops.convert_to_numpy
    np.testing.assert_array_equal(as_numpy(first), as_numpy(again))


@pytest.mark.parametrize("bad", [-1, 2.5])
def test_invalid_max_pixels_is_refused(bad):
    with pytest.raises(ValueError, match=r"max_pixels must be a whole number >= 0\. Received"):
        RandomShift(bad)


def test_a_model_with_the_layer_saves_and_loads_through_the_safe_loader(tmp_path):
    model = build_model("cifar10", "base", seed=2)
    path = tmp_path / "augmented.keras"
    model.save(path)
    loaded = load_model(path, check_manifest=False)
    layer = loaded.get_layer("augment_shift")
    assert isinstance(layer, RandomShift) and (layer.max_pixels, layer.seed) == (4, 3)
    images = np.random.default_rng(3).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6
    )
