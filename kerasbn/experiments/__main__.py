"""``python -m kerasbn.experiments``: runs :func:`kerasbn.cli.experiments.main`."""

import sys

from kerasbn.cli.experiments import main

if __name__ == "__main__":
    sys.exit(main())
