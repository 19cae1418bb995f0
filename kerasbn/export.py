"""``python -m kerasbn.export``: runs :func:`kerasbn.cli.export.main`.

The flags live in :mod:`kerasbn.cli.export`. The package never imports this module, so
nothing shadows a package name (and ``-m`` runs without a runpy warning).
"""

import sys

from kerasbn.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
