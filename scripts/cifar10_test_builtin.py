"""The CIFAR-10 test set read by kerasbn's built-in loader, split and trained as
``python -m kerasbn.compare --dataset trees/cifar10-test`` trains the same images read
from a folder (``scripts/export_image_tree.py cifar10-test``): the reference that the
folder path's numbers are checked against.

    python scripts/cifar10_test_builtin.py --data-dir ../shared/data --seeds 3 \
        --out runs/cifar10-test-builtin

The images are registered as arrays (:func:`kerasbn.data.user.register_arrays`), which
splits and chooses the recipe as a folder of class folders is split and chosen for; only
the reading differs. The images' order differs (the loader's, not the folder's names),
so the splits hold different images and the numbers agree within the seed spread, not
to the bit.
"""

from __future__ import annotations

import argparse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="kerasbn's --data-dir for cifar10")
    parser.add_argument("--variants", default="base,bn")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", required=True, help="the run folder (resumable)")
    args = parser.parse_args(argv)

    from kerasbn import compare
    from kerasbn._logging import configure_logging
    from kerasbn.data import load_dataset
    from kerasbn.data.user import register_arrays

    configure_logging()
    data = load_dataset("cifar10", args.data_dir)
    name = register_arrays(
        "cifar10_test_builtin",
        data.x_test,
        data.y_test,
        data.class_names,
        source=f"the test set of {data.source}",
    )
    compare(name, args.variants, seeds=args.seeds, out_dir=args.out, save_models=None)
    print(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
