"""``python -m kerasbn.tune``: runs :func:`kerasbn.cli.tune.main`.

The flags live in :mod:`kerasbn.cli.tune`; the package never imports this module.
"""

import sys

from kerasbn.cli.tune import main

if __name__ == "__main__":
    sys.exit(main())
