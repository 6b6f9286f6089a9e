"""What every command line does the same way: ``--help``, bad input refused with one line on stderr and exit status 2
(``horesnet.<command>: error: <message>``), Ctrl-C as exit status 130. The four commands are
``run_command(name, argv, body)`` around their own body."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ..errors import ConfigError
from ..schemes import SchemeError
from .argv import normalise

BAD_INPUT = 2  # exit status of a refused command line
INTERRUPTED = 130  # 128 + SIGINT


def error(command: str, err: BaseException | str) -> int:
    """Print ``horesnet.<command>: error: <err>`` on stderr; the exit status of bad input."""
    print(f"horesnet.{command}: error: {err}", file=sys.stderr, flush=True)
    return BAD_INPUT


def run_command(command: str, argv: list[str] | None, body: Callable[[list[str]], int | None]) -> int:
    """Run ``body(argv)`` as ``python -m horesnet.<command>``: its help when asked for, the command line made
    canonical first (:func:`~horesnet.cli.argv.normalise`: ``ckpt=``/``resume=`` paths as the shell gives them),
    bad input (a ConfigError or SchemeError) as exit status 2, Ctrl-C as 130; otherwise ``body``'s exit status
    (None: 0)."""
    from .help import print_help, wants_help

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if wants_help(argv):
            return print_help(command, argv)
        return body(normalise(command, argv)) or 0
    except (ConfigError, SchemeError) as err:
        return error(command, err)
    except KeyboardInterrupt:
        return INTERRUPTED
