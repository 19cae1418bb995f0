"""``python -m kerasbn.predict``: the command-line entry point.

The logic is in :mod:`kerasbn.inference`, so ``kerasbn.predict`` stays the function.
"""

import os
import sys

# Keep TensorFlow's C++ start-up chatter out of the output (errors still show).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasbn.inference import main  # noqa: E402 - after the environment default

if __name__ == "__main__":
    sys.exit(main())
