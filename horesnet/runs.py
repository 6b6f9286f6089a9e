"""The run folder of ``python -m horesnet.fit``: its layout and its record (``summary.json``), owned here only.

    <run folder>/
        checkpoints/last.ckpt    rewritten after every epoch (and mid-epoch on a signal); resume=<folder> reads it
        checkpoints/best.ckpt    the best validation epoch
        summary.json             the record of a finished or diverged run (:class:`Summary`)
        progress.json            the same record of a run stopped early or interrupted by a signal
        metrics.csv              one row per logged step/epoch (metrics.earlier.csv while a resume puts rows back)
        cpus.json                the CPU of every start of the run
        fit.log                  the console log (Hydra's job log, ``hydra.job.name`` + ``.log``)
        fit.lock                 the process that writes the folder (``horesnet.training.runlock``)
        .hydra/config.yaml       the composed config; ``.hydra/overrides.yaml``: the command-line overrides
        analysis/                ``python -m horesnet.analyze``'s default output folder
        wandb/                   Weights & Biases' own folder

Cheap to import (no torch, no Hydra): the command lines read the layout before anything heavy is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .files import json_safe, write_atomic

CHECKPOINTS, CKPT_SUFFIX = "checkpoints", ".ckpt"
LAST, BEST = "last", "best"  # the checkpoints' names without the suffix (Lightning's ModelCheckpoint filename=)
SUMMARY, LOCK = "summary.json", "fit.lock"


def _in_run(*parts: str):
    """The path helper of one entry of the layout above: ``run -> <run>/<parts>`` (whether or not it exists)."""
    return lambda run: Path(run, *parts)


checkpoints_dir = _in_run(CHECKPOINTS)
last_checkpoint = _in_run(CHECKPOINTS, LAST + CKPT_SUFFIX)
best_checkpoint = _in_run(CHECKPOINTS, BEST + CKPT_SUFFIX)
summary_path = _in_run(SUMMARY)
progress_path = _in_run("progress.json")
metrics_path = _in_run("metrics.csv")
earlier_metrics_path = _in_run("metrics.earlier.csv")
cpus_path = _in_run("cpus.json")
fit_log_path = _in_run("fit.log")
lock_path = _in_run(LOCK)
overrides_path = _in_run(".hydra", "overrides.yaml")
config_path = _in_run(".hydra", "config.yaml")
analysis_dir = _in_run("analysis")


def checkpoint_at(path) -> Path:
    """The checkpoint a path names: a run folder's last checkpoint, else the path itself."""
    path = Path(path)
    return last_checkpoint(path) if path.is_dir() else path


def run_folder_of(checkpoint) -> Path:
    """The run folder of a checkpoint: ``<run>`` for ``<run>/checkpoints/<name>.ckpt``, else the file's folder."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS else checkpoint.parent


def unfinished(run) -> bool:
    """A run that ``resume=auto`` continues: it has a last checkpoint and no summary."""
    return last_checkpoint(run).is_file() and not summary_path(run).is_file()


def _regular(f: Path) -> bool:
    """A regular file (never open a FIFO or a device named summary.json: reading it could block forever)."""
    try:
        return stat.S_ISREG(f.stat().st_mode)
    except OSError:
        return False


def find_runs(paths) -> list[Path]:
    """The ``summary.json`` of every run under ``paths`` (run folders, sweep folders, any folder above them), each
    folder's in sorted order, regular files only (:func:`_regular`); a file given is taken as a summary itself. The
    run folder is a file's ``parent``."""
    found = []
    for p in [paths] if isinstance(paths, str | Path) else paths:
        path = Path(p)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(f for f in path.rglob(SUMMARY) if _regular(f))
    return found


SUMMARY_VERSION = 1  # the version this horesnet writes
READS = (1,)  # the versions it reads; a file without ``summary_version`` is version 1 (written before the field)


def check_version(record: dict, source="summary") -> int:
    """The ``summary_version`` of a summary record (1 when it has none); a ConfigError for one this horesnet does
    not read (written by a newer horesnet)."""
    version = record.get("summary_version", 1)
    if isinstance(version, bool) or version not in READS:
        raise ConfigError(f"{source} has summary_version {version!r}, which this horesnet does not read (it reads "
                          f"version{'s' if len(READS) > 1 else ''} {', '.join(map(str, READS))}); it was written "
                          "by a newer horesnet: read it with that version, or upgrade horesnet.")
    return version


@dataclass
class Summary:
    """The record ``horesnet.fit`` writes of a run (``summary.json``; ``progress.json`` for a run stopped early).

    Which fields a record holds depends on its status; ``None`` stands for both null and absent here, and a record
    read from a file is written back with the file's own keys in the file's order (``to_dict``).
    ``version`` is horesnet's version that trained the run; ``summary_version`` the version of this record's
    format (:data:`SUMMARY_VERSION`)."""

    status: str  # finished | stopped | diverged | interrupted
    run_dir: str | None = None
    config: dict = field(default_factory=dict)  # the composed config, resolved
    model: dict = field(default_factory=dict)  # params, macs, units_per_stage, layout, ... (training.run.model_facts)
    resumed_from: str | None = None
    version: str | None = None  # horesnet's version
    git_commit: str | None = None
    torch: str | None = None
    device: str | None = None
    wandb: dict | None = None  # {id, group, project, mode, dir} of the training run's W&B run
    cpu: str | None = None  # the CPU of this start (training.machine.record_cpu)
    cpus: list | None = None  # every distinct CPU the run trained on
    cpu_changed: bool | None = None
    epochs_done: int | None = None
    global_step: int | None = None  # interrupted
    train_time_s: float | None = None
    wall_time_s: float | None = None
    images_per_sec: float | None = None  # finished, stopped
    best_checkpoint: str | None = None  # finished, stopped
    last_checkpoint: str | None = None  # diverged, interrupted
    val: dict | None = None  # {"val/acc1": ..., ...}: finished, stopped
    test: dict | None = None  # {"test/acc1": ..., ...}: finished
    is_global_zero: bool | None = None
    error: str | None = None  # diverged: what diverged
    signal: str | None = None  # interrupted: the signal's name
    where: str | None = None  # interrupted: where in training
    position: str | None = None  # interrupted: where the run continues from
    extra: dict = field(default_factory=dict)  # keys not named above, kept as they are
    summary_version: int = SUMMARY_VERSION
    _keys: tuple = field(default=(), repr=False, compare=False)  # the record's own keys, in order (from_dict)

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "summary_version", "_keys"))

    @classmethod
    def from_dict(cls, record: dict, source="summary") -> Summary:
        """A record as written (today's or an old file without ``summary_version``); ConfigError for a record of a
        version this horesnet does not read, or one that is not a run's record."""
        if not isinstance(record, dict):
            raise ConfigError(f"{source} is not a horesnet run summary: it holds a JSON {type(record).__name__}, "
                              "not an object.")
        version = check_version(record, source)
        if not isinstance(record.get("status"), str):
            raise ConfigError(f"{source} is not a horesnet run summary: field 'status' is missing or not a string.")
        named = cls.fields()
        keys = tuple(k for k in record if k != "summary_version")
        return cls(**{k: record[k] for k in keys if k in named},
                   extra={k: record[k] for k in keys if k not in named}, summary_version=version, _keys=keys)

    @classmethod
    def load(cls, path) -> Summary:
        """Read a ``summary.json`` (or ``progress.json``); a ConfigError names the file when it cannot be read or
        :meth:`from_dict` refuses it."""
        path = Path(path)
        try:
            record = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path} is not a readable {path.name} ({err}).") from None
        return cls.from_dict(record, path)

    def to_dict(self) -> dict:
        """The record as written: ``summary_version`` first, then the keys it was made from (in their order), then
        any other field that is set (not its default), then ``extra``."""
        named = self.fields()
        keys = list(self._keys) + [k for k in named if k not in self._keys and getattr(self, k) != _default(k)]
        keys += [k for k in self.extra if k not in keys]
        return {"summary_version": self.summary_version,
                **{k: getattr(self, k) if k in named else self.extra[k] for k in keys}}

    def to_json(self) -> str:
        """The text written to ``summary.json``: strict JSON (non-finite numbers as null), indented by 2."""
        return json.dumps(json_safe(self.to_dict()), indent=2, default=str, allow_nan=False)

    def write(self, path) -> None:
        """Write the record atomically (a reader never sees half a file)."""
        write_atomic(path, self.to_json())


def _default(name: str):
    f = Summary.__dataclass_fields__[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def write_summary(run, record: dict) -> Path:
    """Write a run's final record (``summary.json``): a finished or diverged run."""
    Summary.from_dict(record).write(summary_path(run))
    return summary_path(run)


def write_progress(run, record: dict) -> Path:
    """Write the record of a run that stopped before its end (``progress.json``): stopped early or interrupted."""
    Summary.from_dict(record).write(progress_path(run))
    return progress_path(run)
