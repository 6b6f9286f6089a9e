"""``python -m horesnet.compare``: compare trained variants over seeds (``horesnet/cli/compare.py``)."""

from .cli.compare import main

if __name__ == "__main__":
    raise SystemExit(main())
