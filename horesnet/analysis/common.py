"""Shared pieces of the analysis tools: evaluation data held on the device, error/loss evaluation, tidy tables.

Units (docs/analysis.md, "Units"): every record an analysis function returns, and so every CSV/JSON/W&B table,
holds accuracies and error rates as fractions in [0, 1]; only what is made for reading (figures, console lines)
shows percent, converted there by :func:`percent`."""

from __future__ import annotations

import contextlib
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..files import json_safe


@dataclass
class EvalData:
    """Normalised evaluation batches ``[(x, y), ...]`` plus the per-channel pixel std used to normalise them."""

    batches: list[tuple[torch.Tensor, torch.Tensor]]
    pixel_std: torch.Tensor | None = None
    name: str = "data"
    meta: dict = field(default_factory=dict)

    @classmethod
    def wrap(cls, data) -> EvalData:
        if isinstance(data, EvalData):
            return data
        if isinstance(data, tuple) and len(data) == 2 and torch.is_tensor(data[0]):
            return cls([data])
        return cls(list(data))

    def to(self, device) -> EvalData:
        return EvalData([(x.to(device), y.to(device)) for x, y in self.batches], self.pixel_std, self.name, self.meta)

    @property
    def size(self) -> int:
        return sum(len(y) for _, y in self.batches)


def from_datamodule(dm, split: str = "test", limit: int | None = None, batch_size: int = 250) -> EvalData:
    """Model-ready batches of a set-up data module's split (no augmentation); images keep their pixel std."""
    n = len(dm.splits[split]) if limit is None else min(limit, len(dm.splits[split]))
    std = dm.std.clone() if isinstance(dm.std, torch.Tensor) else None  # sequences: no pixel std
    return EvalData(dm.eval_batches(split, n, batch_size), std, f"{dm.name}:{split}", {"n": n})


@contextlib.contextmanager
def evaluating(model):
    """Eval mode and no autograd, restoring the previous mode afterwards."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was)


def score(logits: torch.Tensor, y: torch.Tensor) -> tuple[int, float]:
    """(number correct, summed cross-entropy); logits per token ``(B, T, V)`` are scored against ``y`` (B * T,)."""
    if logits.dim() == 3:  # a language model: one prediction per token (horesnet/data/sequence_module.py)
        logits = logits.flatten(0, 1)
    return int((logits.argmax(1) == y).sum()), float(F.cross_entropy(logits.float(), y, reduction="sum"))


def error_and_loss(model, data: EvalData, forward=None) -> tuple[float, float]:
    """Top-1 error as a fraction in [0, 1] (docs/analysis.md, "Units") and mean loss of ``forward`` (default: the
    model) over ``data``."""
    forward = forward or model
    correct = loss = n = 0
    with evaluating(model):
        for x, y in data.batches:
            c, l = score(forward(x), y)
            correct, loss, n = correct + c, loss + l, n + len(y)
    return 1 - correct / n, loss / n


SIGNIFICANT_DIGITS = 10  # float64 arithmetic noise (0.8280000000000001) lies beyond the 15th digit


def tidy(v):
    """A float rounded to ``SIGNIFICANT_DIGITS`` significant digits (``1 - 0.172`` is 0.828, not
    0.8280000000000001); anything else unchanged."""
    return float(f"{v:.{SIGNIFICANT_DIGITS}g}") if isinstance(v, float) and math.isfinite(v) else v


def percent(fraction: float) -> float:
    """A fraction in [0, 1] as percent, for display only (figures, console lines): files keep the fraction."""
    return 100.0 * fraction


def write_table(records: list[dict], out: Path, name: str) -> tuple[Path, Path]:
    """``<name>.csv`` and ``<name>.json`` of a list of flat records, floats rounded by :func:`tidy`."""
    out.mkdir(parents=True, exist_ok=True)
    records = [{k: tidy(v) for k, v in r.items()} for r in records]
    keys = list(dict.fromkeys(k for r in records for k in r))
    csv_path, json_path = out / f"{name}.csv", out / f"{name}.json"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(records)
    # NaN/inf become null (strict JSON); anything json cannot hold becomes its string
    clean = [{k: json_safe(v) if v is None or isinstance(v, bool | int | float | str) else str(v) for k, v in r.items()}
             for r in records]
    json_path.write_text(json.dumps(clean, indent=1, allow_nan=False) + "\n")
    return csv_path, json_path
