"""``python -m kerasbn.predict``: the command-line entry point.

The logic is in :mod:`kerasbn.inference`, so ``kerasbn.predict`` stays the function.
"""

import sys

from kerasbn.inference import main

if __name__ == "__main__":
    sys.exit(main())
