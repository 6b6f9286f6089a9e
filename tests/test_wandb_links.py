"""W&B runs that link up (docs/wandb.md), tested offline by reading back what each run recorded in its ``.wandb``
file with an independent reader (tests/wandb_offline.py): one training run (``log_model=true``), an analysis of
its checkpoint and a comparison share one group; the analysis names the training run's id; the training config is
stored once, nested; the best checkpoint is an artifact; every offline folder holds config, summary and history.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from horesnet.models import MODEL_KEYS

from . import wandb_offline
from ._training_helpers import CLI_TINY, fit


def _offline(folder: Path) -> Path:
    runs = sorted((folder / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, f"expected one offline run under {folder / 'wandb'}, found {runs}"
    return runs[0]


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("wandb_links")
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("HOME", str(base))  # no ~/.netrc: never online
    try:
        run_dir = base / "exp" / "euler-d8"
        overrides = [o for o in CLI_TINY if o != "logger=csv"] + [
            "logger=wandb", "logger.wandb.mode=offline", "logger.wandb.log_model=true"]
        summary = fit(run_dir, overrides)
        from horesnet.cli.analyze import analyze
        from horesnet.cli.compose import compose
        from horesnet.comparison.table import compare

        analyze(compose("analyze", [f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", "study=paths",
                                    "wandb=offline", f"out={base / 'analysis'}"]))
        compare([str(run_dir)], out=str(base / "cmp"), wandb=True)
    finally:
        mp.undo()
    return {"summary": summary, "run_dir": run_dir, "train": _offline(run_dir), "analysis": _offline(base / "analysis"),
            "compare": _offline(base / "cmp")}


def test_training_analysis_and_compare_share_one_group(linked):
    train, analysis, cmp = (wandb_offline.read_run(linked[k]) for k in ("train", "analysis", "compare"))
    assert train["run"]["group"] == analysis["run"]["group"] == cmp["run"]["group"] == "euler-d8"
    assert (train["run"]["job_type"], analysis["run"]["job_type"], cmp["run"]["job_type"]) == \
        ("train", "analysis", "compare")
    assert analysis["config"]["train_run_id"] == train["run"]["id"]
    assert cmp["config"]["train_run_ids"] == [train["run"]["id"]]
    recorded = json.loads((linked["run_dir"] / "summary.json").read_text())["wandb"]
    assert (recorded["id"], recorded["group"], recorded["mode"]) == (train["run"]["id"], "euler-d8", "offline")


def test_training_config_is_stored_once_nested(linked):
    config = wandb_offline.read_run(linked["train"])["config"]
    assert not set(config) & set(MODEL_KEYS), "model options stored flat as well as nested"
    assert not [k for k in config if k.startswith("model/")]
    assert config["model"]["block"] == "euler" and config["model"]["depth"] == 8
    assert config["model"]["facts"]["units_per_stage"] == [1, 1, 1]  # depth 8: (8 - 2) / 6 units per stage
    assert config["optim"]["lr"] == 0.1 and config["data"]["name"] == "synthetic"


def test_best_checkpoint_is_a_model_artifact(linked):
    kinds = wandb_offline.read_run(linked["train"])["kinds"]
    assert "artifact" in kinds
    artifacts = [r.artifact for r in wandb_offline.records(next(linked["train"].glob("*.wandb")))
                 if r.WhichOneof("record_type") == "artifact"]
    assert [(a.type, a.name) for a in artifacts] == [("model", f"model-{linked['train'].name.rsplit('-', 1)[1]}")]
    assert [f.path for f in artifacts[0].manifest.contents] == ["best.ckpt"]


def test_analysis_config_describes_the_checkpoints_network(linked):
    """The analysis run's config is the analysed checkpoint's model (euler-d8, width 0.25), not the command line's
    defaults (depth 56, width 1), nested under ``model`` as in the training run; the training folder is absolute."""
    train = wandb_offline.read_run(linked["train"])["config"]["model"]
    analysis = wandb_offline.read_run(linked["analysis"])["config"]
    assert not set(analysis) & set(MODEL_KEYS), "model options stored flat"
    assert {k: analysis["model"][k] for k in MODEL_KEYS} == {k: train[k] for k in MODEL_KEYS}
    assert (analysis["model"]["depth"], analysis["model"]["width"]) == (8, 0.25)
    assert analysis["model"]["facts"]["params"] == train["facts"]["params"]
    assert Path(analysis["train_run_dir"]).is_absolute()
    assert Path(analysis["train_run_dir"]) == linked["run_dir"].resolve()


def test_analysis_and_compare_log_tables_images_and_a_chart(linked):
    history = {k: v for row in wandb_offline.read_run(linked["analysis"])["history"] for k, v in row.items()}
    assert history["paths/table/_type"] == "table-file" and history["paths/plot/_type"] == "image-file"
    history = {k: v for row in wandb_offline.read_run(linked["compare"])["history"] for k, v in row.items()}
    assert history["comparison/_type"] == "table-file" and history["comparison/nrows"] == 1
    assert history["comparison_plot/_type"] == "image-file"
    assert any(k.startswith("comparison_chart") for k in history), sorted(history)


def test_offline_folders_hold_config_summary_and_history_before_a_sync(linked):
    files = linked["train"] / "files"
    logged = wandb_offline.read_run(linked["train"])
    config = yaml.safe_load((files / "config.yaml").read_text())
    assert config["model"]["value"]["block"] == "euler"
    summary = json.loads((files / "wandb-summary.json").read_text())
    assert summary["final/test/acc1"] == pytest.approx(linked["summary"]["test"]["test/acc1"], rel=1e-6)
    assert summary["final/test/acc1"] == pytest.approx(logged["summary"]["final/test/acc1"], rel=1e-6)
    assert "val/acc1" in (files / "history.csv").read_text().splitlines()[0]
    for k in ("analysis", "compare"):
        assert {p.name for p in (linked[k] / "files").iterdir()} >= {"config.yaml", "wandb-summary.json"}
