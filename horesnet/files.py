"""Small file infrastructure, written once: atomic writes (a file is either the complete old one or the complete new
one, never half-written), strict JSON (non-finite floats become null) and the safe ``torch.load`` (tensors and plain
containers only, never code). Importing this module is cheap: torch is imported inside ``load_tensors`` only."""

from __future__ import annotations

import json
import math
import os
import pickle
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError

TMP_SUFFIX = ".tmp"  # <name>.<random>.tmp next to the file being written (checkpoint.clean_orphans globs for it)


@contextmanager
def atomic_open(path, mode: str = "w", suffix: str = TMP_SUFFIX, **kwargs) -> Iterator:
    """Open a temporary file next to ``path`` (same folder, so the rename stays on one file system) for writing;
    on a clean exit flush, fsync and ``os.replace`` it onto ``path``; on any exception delete it and leave ``path``
    as it was. The file object's ``name`` is the temporary file's path (to check it before it is renamed)."""
    path = Path(path)
    tmp = path.parent / f"{path.name}.{secrets.token_hex(8)}{suffix}"
    # created as open() creates a file (0666 less the umask), not mkstemp's 0600 that hid results from a group
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path, data: bytes | str) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically (:func:`atomic_open`)."""
    with atomic_open(path, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def json_safe(obj):
    """NaN and ±inf (a spread or test that does not exist) become null, in nested dicts, lists and tuples: strict
    JSON. Anything else is returned as it is."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def write_json_atomic(path, obj, indent: int | None = 2, newline: bool = False) -> None:
    """``obj`` as strict JSON (:func:`json_safe`; what json cannot hold becomes its string) written atomically.
    The whole text is made before the file is opened: an object that cannot be serialised leaves no file behind."""
    text = json.dumps(json_safe(obj), indent=indent, default=str, allow_nan=False)
    write_atomic(path, text + "\n" if newline else text)


def load_tensors(path, what: str = "weights file"):
    """``torch.load(path, weights_only=True)`` on CPU; an unreadable file or one holding anything but tensors and
    plain containers (a pickle payload) is a ConfigError naming the file."""
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist (give the path of a .pth/.pt/.ckpt file).")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = str(err).strip().splitlines()
        why = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), lines[0] if lines else "")
        raise ConfigError(f"{path} was refused: it holds something other than tensors and plain containers "
                          f"({why.strip()[:200]}). horesnet reads weights with weights_only=True and never runs "
                          "code from a file.") from None
    except Exception as err:  # noqa: BLE001 -- truncated zips, wrong formats, permissions ...
        raise ConfigError(f"{path} is not a readable {what} ({type(err).__name__}: {err}).") from None
