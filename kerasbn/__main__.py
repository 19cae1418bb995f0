"""``python -m kerasbn``: the ``kerasbn`` command (:mod:`kerasbn.cli.main`)."""

import sys

from kerasbn.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
