"""``python -m kerasbn.compare``: the command-line entry point.

The logic is in :mod:`kerasbn.comparison` so the package never imports this module
(``kerasbn.compare`` stays the function, and ``-m`` runs without a runpy warning).
"""

import os
import sys

# Keep TensorFlow's C++ start-up chatter out of the user's terminal (errors still show).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasbn.comparison import main  # noqa: E402 - after the environment default

if __name__ == "__main__":
    sys.exit(main())
