"""``python -m kerasbn.compare``: the command-line entry point.

The logic is in :mod:`kerasbn.comparison` so the package never imports this module
(``kerasbn.compare`` stays the function, and ``-m`` runs without a runpy warning).
"""

import sys

from kerasbn.comparison import main

if __name__ == "__main__":
    sys.exit(main())
