"""``metrics.csv`` across the slices of a resumed run: the CSV logger starts the file afresh at every start, so the
rows of the earlier slices are put back in front (and kept in ``metrics.earlier.csv`` until then)."""

from __future__ import annotations

import csv
from pathlib import Path

from .. import runs
from ..files import atomic_open


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def merge_metrics(earlier: list[dict], now: list[dict]) -> list[dict]:
    """``earlier``'s rows from before the first epoch (and, for rows without one or of the epoch ``now`` resumed
    in the middle of, the first step) of ``now``, then ``now``: the rows of a killed segment's unfinished epoch
    after its last checkpoint are dropped, those steps are trained again."""
    first_epoch = min((int(r["epoch"]) for r in now if r.get("epoch")), default=None)
    first_step = min((int(r["step"]) for r in now if r.get("step")), default=None)

    def before_step(r):
        return first_step is None or bool(r.get("step") and int(r["step"]) < first_step)

    def before(r):
        if r.get("epoch"):
            epoch = int(r["epoch"])
            return first_epoch is None or epoch < first_epoch or (epoch == first_epoch and before_step(r))
        return before_step(r)

    return [r for r in earlier if before(r)] + now


def write_metrics(path: Path, rows: list[dict]) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def earlier_metrics(run_dir: Path) -> list[dict]:
    """The rows logged before this resume. The CSV logger starts ``metrics.csv`` afresh, so they are also kept in
    ``metrics.earlier.csv`` until the resumed run has put them back: a resumed run that is killed loses nothing."""
    kept = runs.earlier_metrics_path(run_dir)
    earlier = merge_metrics(read_metrics(kept), read_metrics(runs.metrics_path(run_dir)))
    if earlier:
        write_metrics(kept, earlier)
    return earlier


def prepend_metrics(path: Path, earlier: list[dict], trainer) -> None:
    """Put the rows logged before a resume back in front of the resumed run's ``metrics.csv``."""
    if not earlier or not trainer.is_global_zero:
        return
    for lg in trainer.loggers:
        lg.save()
    write_metrics(path, merge_metrics(earlier, read_metrics(path)))
    runs.earlier_metrics_path(path.parent).unlink(missing_ok=True)
