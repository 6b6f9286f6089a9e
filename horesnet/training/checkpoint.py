"""Checkpoints written atomically (temporary file, fsync, rename) and resolution of ``resume=auto|PATH``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from ..errors import ConfigError


class AtomicCheckpointIO(TorchCheckpointIO):
    """A checkpoint file is either the complete old one or the complete new one, never half-written."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


class StopAfterEpoch(pl.Callback):
    """Stop cleanly (resumably) after epoch ``epoch`` (1-based) -- a time-boxed slice of a longer run."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 >= self.epoch:
            trainer.should_stop = True


def resume_checkpoint(resume, run_dir: Path) -> Path | None:
    """The checkpoint to resume from: ``auto`` = ``run_dir/checkpoints/last.ckpt`` if it exists; a path = that
    checkpoint, or ``<dir>/checkpoints/last.ckpt`` for a run folder."""
    if resume in (None, False, "", "null"):
        return None
    if resume == "auto":
        last = run_dir / "checkpoints" / "last.ckpt"
        return last if last.is_file() else None
    path = Path(str(resume)).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise ConfigError(f"resume={resume!r}: no checkpoint at {path}; give a .ckpt file, a run folder holding "
                          "checkpoints/last.ckpt, or resume=auto.")
    return path


def check_checkpoint(path: Path) -> dict:
    """Load a checkpoint on CPU, raising a clear ConfigError if it is unreadable or not a horesnet checkpoint."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ConfigError(f"{path} is not a readable checkpoint ({type(err).__name__}: {err}).") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "model" not in ckpt.get("hyper_parameters", {}):
        raise ConfigError(f"{path} is not a horesnet training checkpoint (no model hyper-parameters inside).")
    return ckpt


# Settings that may change between the slices of one run: where the data lives and how evaluation is batched.
RESUME_FREE_DATA_KEYS = ("root", "download", "verify", "num_workers", "eval_batch_size")


def _training_settings(model: dict, optim: dict, data: dict | None) -> dict:
    """What defines a run's training, flattened: model options, ``optim.*`` and ``data.*`` (less where it lives)."""
    return {**model, **{f"optim.{k}": v for k, v in optim.items()},
            **{f"data.{k}": v for k, v in (data or {}).items() if k not in RESUME_FREE_DATA_KEYS}}


def check_resume_compatible(path: Path, model: dict, optim: dict, data: dict) -> None:
    """Refuse to continue a checkpoint under a different network, optimiser or training data: a resumed run
    must be the run it claims to be. Longer training (``trainer.max_epochs``) is allowed."""
    saved = check_checkpoint(path)["hyper_parameters"]
    before = _training_settings(saved.get("model", {}), saved.get("optim", {}), saved.get("data"))
    now = _training_settings(model, optim, data)
    diffs = [f"{k}: checkpoint {before.get(k)!r}, now {now.get(k)!r}" for k in sorted(before.keys() | now.keys())
             if before.get(k) != now.get(k)]
    if diffs:
        raise ConfigError(f"cannot resume {path}: it was trained with different settings ({'; '.join(diffs)}). "
                          "Resume with the run's own settings, or start a new run (resume=null or another "
                          "hydra.run.dir).")
