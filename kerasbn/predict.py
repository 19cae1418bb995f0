"""``python -m kerasbn.predict``: runs :func:`kerasbn.cli.predict.main`.

The flags live in :mod:`kerasbn.cli.predict`. The package never imports this module, so
``kerasbn.predict`` stays what the package names so (and ``-m`` runs without a runpy warning).
"""

import sys

from kerasbn.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
