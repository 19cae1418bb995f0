"""``python -m kerasbn.bench``: runs :func:`kerasbn.cli.bench.main`."""

import sys

from kerasbn.cli.bench import main

if __name__ == "__main__":
    sys.exit(main())
