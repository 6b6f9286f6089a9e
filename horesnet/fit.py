"""``python -m horesnet.fit``: train any variant (``horesnet/cli/fit.py``)."""

from .cli.fit import main

if __name__ == "__main__":
    raise SystemExit(main())
