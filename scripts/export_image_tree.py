"""Write an image set as a plain folder of class folders (PNG, lossless), for
``python -m kerasbn.compare --dataset FOLDER``: the published "your own data" runs read
their images through the same path a user's folder takes.

    python scripts/export_image_tree.py cifar10-test trees/cifar10-test --data-dir ../shared/data
    python scripts/export_image_tree.py skimage-faces trees/skimage-faces

``cifar10-test``: the 10,000 test images of kerasbn's CIFAR-10 loader, ``<class>/<n>.png``.
``skimage-faces``: scikit-image's bundled ``skimage.data.lfw_subset()`` (200 grayscale
25x25 crops from Labeled Faces in the Wild; its docstring: "100 first images are faces
and subsequent 100 are non-faces"), as ``face/`` and ``non_face/`` (needs
``pip install scikit-image``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _cifar10_test(data_dir: str | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from kerasbn.data import load_dataset

    data = load_dataset("cifar10", data_dir)
    return data.x_test, data.y_test, data.class_names


def _skimage_faces(data_dir: str | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from skimage.data import lfw_subset

    # Floats in [0, 1] in the releases we read (0.26); 8 bits is what a PNG holds.
    images = np.rint(np.asarray(lfw_subset(), dtype=np.float64) * 255).astype(np.uint8)
    labels = np.repeat([0, 1], len(images) // 2)
    return images, labels, ("face", "non_face")


SOURCES = {"cifar10-test": _cifar10_test, "skimage-faces": _skimage_faces}


def main(argv=None) -> int:
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", choices=sorted(SOURCES))
    parser.add_argument("out", type=Path, help="the folder to create (must not exist)")
    parser.add_argument("--data-dir", help="kerasbn's --data-dir for cifar10-test")
    args = parser.parse_args(argv)
    images, labels, classes = SOURCES[args.source](args.data_dir)
    if args.out.exists():
        parser.exit(2, f"error: {args.out} exists; pass a new folder.\n")
    for name in classes:
        (args.out / name).mkdir(parents=True)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        pixels = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
        Image.fromarray(pixels).save(args.out / classes[label] / f"{i:05d}.png")
    print(f"wrote {len(images)} images of {len(classes)} classes to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
