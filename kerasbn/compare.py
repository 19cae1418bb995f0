"""``python -m kerasbn.compare``: runs :func:`kerasbn.cli.compare.main`.

The flags live in :mod:`kerasbn.cli.compare`. The package never imports this module, so
``kerasbn.compare`` stays what the package names so (and ``-m`` runs without a runpy warning).
"""

import sys

from kerasbn.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
