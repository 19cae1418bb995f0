"""``python -m kerasbn.results``: runs :func:`kerasbn.cli.results.main`."""

import sys

from kerasbn.cli.results import main

if __name__ == "__main__":
    sys.exit(main())
