"""The metric a comparison is about: test accuracy (%) for classification, bits per character for language models
(a run whose ``summary.json`` holds ``test/bpc``: docs/transformers.md). Row keys are ``test_<name>_mean`` etc."""

from __future__ import annotations

from typing import NamedTuple


class Metric(NamedTuple):
    name: str  # in the row keys: test_acc_mean, test_bpc_seeds, ...
    key: str  # in summary.json's test/val records, after "test/" or "val/"
    scale: float  # shown value = scale * stored value
    column: str  # the table's column, with "test " or "val " before it
    title: str  # what it is, for sentences and figure titles
    better: str  # which way is better


ACCURACY = Metric("acc", "acc1", 100.0, "acc %", "accuracy (%)", "higher is better")
BPC = Metric("bpc", "bpc", 1.0, "bpc", "bits per character", "lower is better")


def metric_of(runs: list[dict]) -> Metric:
    """Bits per character when every run reports it (language modelling), test accuracy otherwise."""
    return BPC if runs and all("test/bpc" in (r.get("test") or {}) for r in runs) else ACCURACY


def metric_of_rows(rows: list[dict]) -> Metric:
    return BPC if rows and "test_bpc_seeds" in rows[0] else ACCURACY
