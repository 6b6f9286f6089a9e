"""Shared helpers of the training tests (test_training_run, test_training_cli): tiny run configurations, an
in-process ``fit`` and readers for the metrics.csv a run writes.
"""

from __future__ import annotations

import csv
from pathlib import Path

from horesnet.cli.compose import compose
from horesnet.training.run import run_fit

QUIET = "trainer.enable_progress_bar=false"
TINY = ["data=synthetic", "width=0.25", "logger=csv", "data.limit_val=32", "data.limit_test=32",
        "data.eval_batch_size=32", QUIET]
CLI_TINY = ["data=synthetic", "depth=8", "width=0.25", "logger=csv", "trainer.max_epochs=1",
            "data.limit_train=32", "data.limit_val=32", "data.limit_test=32", QUIET]


def fit(run_dir: Path, overrides: list[str]) -> dict:
    return run_fit(compose("fit", overrides), run_dir=run_dir, group=None)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def column(rows: list[dict], key: str) -> list[tuple[int, float]]:
    """(epoch, value) of every row that has ``key``."""
    return [(int(r["epoch"]), float(r[key])) for r in rows if r.get(key)]
