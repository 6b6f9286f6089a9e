"""Checkpoints written atomically (temporary file, fsync, rename) and resolution of ``resume=auto|PATH``."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from .. import runs
from ..errors import ConfigError
from ..files import TMP_SUFFIX, atomic_open, load_tensors
from ..models.config import complete
from .divergence import DivergedError, non_finite_tensor


class AtomicCheckpointIO(TorchCheckpointIO):
    """A checkpoint file is either the complete old one or the complete new one, never half-written; a checkpoint
    holding a non-finite tensor is never written; every load is ``torch.load(weights_only=True)``."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        bad = non_finite_tensor(checkpoint.get("state_dict", {}))
        if bad:
            raise DivergedError(f"the network diverged: {bad} holds NaN or inf, so no checkpoint was written "
                                f"(the last finite {Path(path).name} is kept).")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:  # <name>.<random>.tmp, fsynced, then renamed onto path
            torch.save(checkpoint, f)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return load_tensors(Path(path), "checkpoint")


def clean_orphans(run_dir: Path) -> list[Path]:
    """Delete the temporary files a killed checkpoint write left in ``run_dir/checkpoints``; return them."""
    folder = runs.checkpoints_dir(run_dir)
    orphans = sorted(folder.glob(f"*.ckpt.*{TMP_SUFFIX}")) if folder.is_dir() else []
    for p in orphans:
        p.unlink(missing_ok=True)
    return orphans


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
        last = runs.last_checkpoint(run_dir)
        return last if last.is_file() else None
    path = runs.checkpoint_at(Path(str(resume)).expanduser())
    if not path.is_file():
        raise ConfigError(f"resume={resume!r}: no checkpoint at {path}; give a .ckpt file, a run folder holding "
                          "checkpoints/last.ckpt, or resume=auto.")
    return path


def check_checkpoint(path: Path) -> dict:
    """Load a checkpoint safely (``torch.load(weights_only=True)`` on CPU: a crafted file can never run code; any
    failure is a ConfigError) and check it is a horesnet training checkpoint."""
    ckpt = load_tensors(path, "checkpoint")
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or "state_dict" not in ckpt or not isinstance(hp.get("model"), dict):
        raise ConfigError(f"{path} is not a horesnet training checkpoint (no model hyper-parameters inside).")
    return ckpt


# Settings that may change between the slices of one run: where the data lives and how evaluation is batched.
RESUME_FREE_DATA_KEYS = ("root", "download", "verify", "num_workers", "eval_batch_size")


def _training_settings(model: dict, optim: dict, data: dict | None) -> dict:
    """What defines a run's training, flattened: model options, ``optim.*`` and ``data.*`` (less where it lives)."""
    return {**complete(model), **{f"optim.{k}": v for k, v in optim.items()},
            **{f"data.{k}": v for k, v in (data or {}).items() if k not in RESUME_FREE_DATA_KEYS}}


def check_resume_compatible(path: Path, model: dict, optim: dict, data: dict) -> dict:
    """Refuse to continue a checkpoint under a different network, optimiser or training data: a resumed run
    must be the run it claims to be. Longer training (``trainer.max_epochs``) is allowed. Returns the checkpoint."""
    ckpt = check_checkpoint(path)
    saved = ckpt["hyper_parameters"]
    before = _training_settings(saved.get("model", {}), saved.get("optim", {}), saved.get("data"))
    now = _training_settings(model, optim, data)
    diffs = [f"{k}: checkpoint {before.get(k)!r}, now {now.get(k)!r}" for k in sorted(before.keys() | now.keys())
             if before.get(k) != now.get(k)]
    if diffs:
        raise ConfigError(f"cannot resume {path}: it was trained with different settings ({'; '.join(diffs)}). "
                          "Resume with the run's own settings, or start a new run (resume=null or another "
                          "hydra.run.dir).")
    return ckpt
