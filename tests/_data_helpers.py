"""Shared helpers of the data tests (test_data_cifar, test_data_idx): where Debian's Fashion-MNIST lives, and a
fake network for download tests.
"""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def _fake_urlopen(monkeypatch, serve):
    """Replace urllib's urlopen: ``serve(url)`` returns the response body (bytes) or a stream."""
    requested = []

    def urlopen(url, timeout=None, **kwargs):
        requested.append(url)
        body = serve(url)
        return io.BytesIO(body) if isinstance(body, bytes) else body

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return requested


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
