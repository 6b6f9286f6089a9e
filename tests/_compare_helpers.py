"""Finished run folders written by hand, in the layout and ``summary.json`` schema that ``run_fit`` writes (for the
compare, report and fairness tests)."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

from omegaconf import OmegaConf

from horesnet.cli.compose import compose

PARAMS = {20: 269_722, 32: 464_154}
_CONFIGS: dict[tuple, dict] = {}


def _config(block: str, depth: int, extra: tuple[str, ...]) -> dict:
    key = (block, depth, extra)
    if key not in _CONFIGS:
        cfg = compose("fit", [f"block={block}", f"depth={depth}", "logger=csv", *extra])
        _CONFIGS[key] = OmegaConf.to_container(cfg, resolve=True)
    return copy.deepcopy(_CONFIGS[key])


def write_run(root: Path, block: str, depth: int, seed: int, test_acc: float, val_acc: float,
              extra: tuple[str, ...] = (), params: int | None = None, curve: bool = False) -> Path:
    """One finished run folder with summary.json as run_fit writes it."""
    config = _config(block, depth, extra)
    config["seed"] = seed
    n = (depth - 2) // 6
    run_dir = root / "-".join([block, f"d{depth}", f"s{seed}", *(e.replace("=", "_") for e in extra)])
    run_dir.mkdir(parents=True)
    summary = {
        "status": "finished", "run_dir": str(run_dir), "config": config,
        "model": {"params": params or PARAMS[depth], "macs": 40_000_000 * depth // 20, "units_per_stage": [n] * 3,
                  "layout": [f"stage {i}: {n} units = euler* + {block}" for i in (1, 2, 3)], "leftover_units": 0,
                  "equal_depth": True},
        "epochs_done": config["trainer"]["max_epochs"], "resumed_from": None, "train_time_s": 1000.0 + seed,
        "images_per_sec": 2000.0 + 10 * seed, "version": "0.1.0", "git_commit": None, "torch": "2.13.0",
        "device": "cuda:0", "best_checkpoint": str(run_dir / "checkpoints" / "best.ckpt"),
        "val": {"val/loss": 0.3, "val/acc1": val_acc, "val/acc5": 0.998, "val/ece": 0.03},
        "test": {"test/loss": 0.31, "test/acc1": test_acc, "test/acc5": 0.997, "test/ece": 0.031},
        "wall_time_s": 1200.0 + seed,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if curve:
        with open(run_dir / "metrics.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["epoch", "step", "val/acc1", "train/loss_epoch"])
            for e in range(3):
                w.writerow([e, 100 * e, val_acc - 0.01 * (2 - e), ""])
                w.writerow([e, 100 * e, "", 1.0 - 0.1 * e])
    return run_dir


def write_metrics(run: Path, train_acc: list[float], val_acc: list[float]) -> None:
    """A metrics.csv as Lightning's CSV logger writes it: per epoch, train and validation accuracy rows."""
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", "train/acc1", "val/acc1", "train/loss_step"])
        w.writerow(["", 10, "", "", ""])                       # lr-monitor row: no epoch
        for e, (t, v) in enumerate(zip(train_acc, val_acc, strict=True)):
            w.writerow([e, 10 * e, "", "", 1.0])
            w.writerow([e, 10 * e, t, "", ""])
            w.writerow([e, 10 * e, "", v, ""])
