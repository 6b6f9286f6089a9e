"""``python -m horesnet.info``: describe a network without training it (``horesnet/cli/info.py``)."""

from .cli.info import main

if __name__ == "__main__":
    raise SystemExit(main())
