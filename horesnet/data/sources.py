"""Where datasets live, how they are checked and how they are fetched (atomically, never half-written)."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ConfigError
from ..files import atomic_open

ENV_ROOT = "HORESNET_DATA"
DOWNLOADS_OFF = "downloads are off (data.download=false)"  # why data is missing when data.download=false


class DataError(ConfigError):
    """Missing, corrupt or unsafe data. The message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Download:
    """One file of a dataset: where it is fetched from and the md5 checksums accepted for it (empty: unchecked).
    The file is saved under the last part of the URL's path."""

    url: str
    md5: frozenset[str] = frozenset()

    @property
    def file(self) -> str:
        return urlparse(self.url).path.rsplit("/", 1)[-1]

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or ""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$HORESNET_DATA``, else ``$XDG_CACHE_HOME/horesnet/data`` (``~/.cache/...``)."""
    if root:
        return Path(root).expanduser()
    if os.environ.get(ENV_ROOT):
        return Path(os.environ[ENV_ROOT]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "horesnet" / "data"


def checksum(path: Path, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, expected_md5, timeout: float = 20.0) -> Path:
    """Fetch ``url`` to ``dest`` through a temporary file; verify (``expected_md5``: one md5, a set of accepted
    ones, or None), then rename. Raises DataError offline or on a checksum mismatch; never leaves a partial file."""
    accepted = {expected_md5} if isinstance(expected_md5, str) else set(expected_md5 or ())
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:  # <name>.<random>.part, renamed onto dest only once it is complete and verified
        with atomic_open(dest, "wb", suffix=".part") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
            out.flush()
            if accepted and checksum(Path(out.name)) not in accepted:
                raise DataError(f"downloaded {url} but its md5 is not {' or '.join(sorted(accepted))}; "
                                "the download is corrupt.")
        return dest
    except OSError as err:
        raise DataError(f"could not download {url}: {err}") from None


def obtain(files: Iterable[tuple], download_ok: bool, missing: Callable[[str], DataError]) -> None:
    """Download each ``(url, dest, expected_md5)`` of ``files``; when downloads are off or one fails, raise the
    dataset's missing-data error ``missing(why)``."""
    if not download_ok:
        raise missing(DOWNLOADS_OFF)
    try:
        for url, dest, expected_md5 in files:
            download(url, dest, expected_md5)
    except DataError as err:
        raise missing(str(err)) from None
