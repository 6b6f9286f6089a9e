"""``python -m horesnet.compare``: compare trained variants over seeds (``horesnet/cli/compare.py``)."""

import sys

from .cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
