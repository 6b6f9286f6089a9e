"""Streaming analysis: a progress bar per study (batches evaluated, with an ETA where the study's cost is known)
and the manifest ``analysis.json`` of an output folder, which records each finished study with the options and the
checkpoint it was computed from, so that an interrupted ``study=all`` resumes with the studies not yet written.

Each entry carries ``records_version``, the units of the tables it lists: 2 (now) holds accuracies and errors as
fractions in [0, 1] (docs/analysis.md, "Units"); an entry without it (1) was written in percent by an older
horesnet. An old entry of a study whose tables held percent (``PERCENT_BEFORE``) never counts as finished, so
resuming over an old folder recomputes those studies instead of mixing percent and fractions in one folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..files import write_json_atomic
from .common import EvalData

MANIFEST = "analysis.json"
RECORDS_VERSION = 2  # 2: accuracies and errors as fractions in [0, 1]; 1 (an entry without the key): percent
# the built-in studies whose tables held percent at records_version 1 (paths, effective, responses hold no rates)
PERCENT_BEFORE = frozenset({"lesion", "lesion_random", "reorder", "refinement", "robustness"})


class _Ticking(list):
    """The batches of an EvalData; every batch handed out advances ``bar``."""

    bar = None

    def __iter__(self):
        for item in list.__iter__(self):
            yield item
            if self.bar is not None:
                if self.bar.total is not None and self.bar.n >= self.bar.total:
                    self.bar.total = self.bar.n + 1  # the cost was an estimate: never show more than 100%
                self.bar.update(1)


class CountedData(EvalData):
    """EvalData whose batch iterations drive the current study's progress bar."""

    def __init__(self, data: EvalData):
        super().__init__(_Ticking(data.batches), data.pixel_std, data.name, data.meta)

    @property
    def size(self) -> int:
        return sum(len(y) for _, y in list.__iter__(self.batches))

    def to(self, device) -> EvalData:
        return CountedData(EvalData(list(list.__iter__(self.batches)), self.pixel_std, self.name, self.meta).to(device))

    def track(self, bar) -> None:
        self.batches.bar = bar


def study_bar(name: str, total: int | None, enabled: bool = True):
    """A tqdm bar on stderr counting the batches a study evaluates (``total``: its estimate, or None)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{name:<13}", unit="batch", file=sys.stderr, dynamic_ncols=True, leave=True,
                disable=not enabled, bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} batches "
                                                "[{elapsed}<{remaining}]" if total else None)


def read_manifest(out: Path) -> dict:
    try:
        data = json.loads((out / MANIFEST).read_text())
        return data if isinstance(data, dict) and isinstance(data.get("studies"), dict) else {"studies": {}}
    except (OSError, ValueError):
        return {"studies": {}}


def finished(manifest: dict, out: Path, study: str, tables, key: dict) -> bool:
    """Whether ``study`` was already written to ``out`` from the same checkpoint, data and options (``key``)."""
    entry = manifest["studies"].get(study)
    return (isinstance(entry, dict) and entry.get("key") == json.loads(json.dumps(key, default=str))
            and not outdated(manifest, study)
            and all((out / f"{t}.{ext}").is_file() for t in entry.get("tables", tables) for ext in ("csv", "png")))


def outdated(manifest: dict, study: str) -> bool:
    """Whether the manifest records ``study`` as written by an older horesnet in percent (``PERCENT_BEFORE``)."""
    entry = manifest["studies"].get(study)
    return (study in PERCENT_BEFORE and isinstance(entry, dict)
            and entry.get("records_version", 1) != RECORDS_VERSION)


def record(out: Path, manifest: dict, study: str, key: dict, tables: list[str], seconds: float) -> None:
    """Add a finished study to the manifest (written atomically: an interruption never leaves half a file)."""
    manifest["studies"][study] = {"key": key, "tables": tables, "seconds": round(seconds, 2),
                                  "records_version": RECORDS_VERSION}
    write_json_atomic(out / MANIFEST, manifest, indent=2)
