"""Weights & Biases runs that link up (docs/wandb.md): a training run, its analyses and a comparison of one
experiment share a W&B group; every run's config is stored once, nested; an analysis run names its training run;
an offline run's folder holds its config, summary and history before any sync."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import runs
from ..errors import ConfigError
from ..models.config import MODEL_KEYS


def experiment_group(wb: dict, sweep: str | None, run_dir: Path) -> str:
    """The W&B group of a training run and of everything run on its outputs later."""
    return wb.get("group") or sweep or Path(run_dir).name


def nested_config(run_config: dict, facts: dict) -> dict:
    """The run's config once, nested: the network's options and facts under ``model``, the rest as composed."""
    rest = {k: v for k, v in run_config.items() if k not in MODEL_KEYS}
    return {**rest, "model": {**{k: run_config[k] for k in MODEL_KEYS if k in run_config}, "facts": facts}}


def run_link(run) -> dict:
    """``{id, group, project, mode, dir}`` of a live W&B run (what ``summary.json`` keeps under ``wandb``)."""
    return {"id": run.id, "group": run.group or None, "project": run.project,
            "mode": "offline" if run.offline else "online", "dir": str(Path(run.dir).parent)}


def training_link(run_dir) -> dict:
    """The ``wandb`` record of the training run in ``run_dir`` (``summary.json``, else ``progress.json``), with
    the group to use: the recorded one, else the run folder's name. ``{}`` without a run folder."""
    if run_dir is None:
        return {}
    run_dir = Path(run_dir)
    for path in (runs.summary_path(run_dir), runs.progress_path(run_dir)):
        try:
            recorded = runs.Summary.load(path).wandb or {}
        except (ConfigError, AttributeError):  # absent, unreadable, not a record, or a newer record's version
            continue
        if recorded:
            return {**recorded, "group": recorded.get("group") or run_dir.name}
    return {"group": run_dir.name}


def log_checkpoint(run, path, metadata: dict | None = None) -> None:
    """Upload the checkpoint ``path`` as the run's ``model`` artifact ``model-<run id>``, aliases best/latest."""
    import wandb

    artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata=metadata or {})
    artifact.add_file(str(path), name=Path(path).name)
    run.log_artifact(artifact, aliases=["best", "latest"])


def write_offline_files(run, history_csv: Path | None = None) -> None:
    """An offline run's ``files/`` folder otherwise holds only ``requirements.txt`` until ``wandb sync``: write
    ``config.yaml`` (W&B's layout: ``key: {value: ...}``), ``wandb-summary.json`` and the history as CSV, so the
    folder can be read without syncing. Online runs are left alone (W&B writes these files itself)."""
    if not run.offline:
        return
    import yaml

    files = Path(run.dir)
    files.mkdir(parents=True, exist_ok=True)
    config = {k: {"value": v} for k, v in run.config.as_dict().items() if not k.startswith("_")}
    (files / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    summary = {k: _plain(run.summary[k]) for k in run.summary.keys()}
    (files / "wandb-summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    if history_csv is not None and Path(history_csv).is_file():
        shutil.copyfile(history_csv, files / "history.csv")


def _plain(value):
    """A summary value as plain data (W&B hands back its own dict-like wrappers for nested values)."""
    if hasattr(type(value), "keys"):  # a dict or W&B's SummarySubDict (looked up on the type: the wrapper answers
        return {k: _plain(value[k]) for k in value.keys()}  # any attribute name as a summary key)
    return value
