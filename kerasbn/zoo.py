"""``python -m kerasbn.zoo list [DIR]``: runs :func:`kerasbn.cli.zoo.main`."""

import sys

from kerasbn.cli.zoo import main

if __name__ == "__main__":
    sys.exit(main())
