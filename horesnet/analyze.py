"""``python -m horesnet.analyze``: take a trained network apart (``horesnet/cli/analyze.py``)."""

from .cli.analyze import main

if __name__ == "__main__":
    raise SystemExit(main())
