"""Check a command line before anything is written: every sweep member composes, its model builds, its data
exists (or can be fetched), its optimiser and trainer options are valid."""

from __future__ import annotations

import contextlib
import inspect
import io
import itertools
import warnings
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..data.sequences import check_task
from ..errors import ConfigError, check_writable
from ..models import build_model, plan_layout
from ..models.scale import residual_scale
from ..models.torchvision import load_weights
from ..training.config import model_kwargs, plain, trainer_kwargs
from .compose import compose


def expand_overrides(argv: list[str], max_members: int = 256) -> list[list[str]]:
    """The override lists of every sweep member (one list when not sweeping); hydra.* and flags dropped."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    multirun = any(a in ("-m", "--multirun") for a in argv)
    items = [a for a in argv if not a.startswith("-") and not a.startswith(("hydra.", "hydra/", "+hydra"))]
    try:
        parsed = OverridesParser.create().parse_overrides(items)
    except Exception as err:  # noqa: BLE001 -- hydra raises its own grammar errors
        raise ConfigError(f"bad command-line override: {err}") from None
    choices = []
    for o in parsed:
        if o.is_sweep_override():
            if not multirun:
                raise ConfigError(f"{o.input_line!r} lists several values; add -m to sweep over them.")
            choices.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([o.input_line])
    members = [list(c) for c in itertools.product(*choices)]
    return members[:max_members]


def check_config(cfg, run_dir: str | None = None) -> float | None:
    """Everything a run needs, checked before its folder exists (the schema was checked when composing). Returns
    the network's residual scale when ``scale_controls`` asks for its matched control (the network is built once)."""
    model_cfg = model_kwargs(cfg)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    trainer_cfg = trainer_kwargs(cfg)
    trainer_cfg.pop("checkpoint_every_n_steps", None)  # horesnet's own key (training/interrupt.py)
    check_task(model_cfg, data)  # the model fits the data's task: sequences, causal, context (data/sequences.py)
    layout = plan_layout(**{k: model_cfg[k] for k in ("arch", "depth", "block", "unit", "stages", "entry", "strict",
                                                       "inner") if k in model_cfg})
    check_training_memory(layout, model_cfg, data, trainer_cfg)  # before building a network that cannot fit
    with warnings.catch_warnings():  # a flagged scheme warns once, when the run builds its network
        warnings.simplefilter("ignore", UserWarning)
        model = build_model(**model_cfg)
    if cfg.get("weights"):  # the file fits the network (depth, variant, shapes) before any output exists
        with contextlib.redirect_stderr(io.StringIO()):  # its classifier notice: printed once, when the run loads it
            load_weights(model, cfg.weights)
        from ..training.divergence import invalid_tensor

        bad = invalid_tensor(model)
        if bad:
            raise ConfigError(f"weights={cfg.weights}: {bad}, so the network would compute NaN; valid: weights "
                              "whose tensors are finite and whose BatchNorm running_var is >= 0 (a torchvision "
                              "checkpoint as published).")
    if cfg.get("grad_checkpointing"):  # the stages exist in this network
        model.set_grad_checkpointing(True, stages=cfg.get("grad_checkpointing_stages"))
    elif cfg.get("grad_checkpointing_stages") is not None:  # an option that would silently do nothing
        raise ConfigError(f"grad_checkpointing_stages={plain(cfg.grad_checkpointing_stages)} needs "
                          "grad_checkpointing=true (valid: add grad_checkpointing=true, or drop the stages).")
    scales = residual_scale(model) if cfg.get("scale_controls") and cfg.block != "ode" else None
    del model
    import pytorch_lightning as pl  # Lightning: imported only once the cheap checks passed

    from ..data import ArrayDataModule, check_available
    from ..training.checkpoint import check_resume_compatible, resume_checkpoint

    ArrayDataModule(**data)
    check_available(data["name"], data.get("root"), data.get("download", True))
    valid = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self", "logger", "callbacks", "plugins"}
    unknown = set(trainer_cfg) - valid
    if unknown:
        raise ConfigError(f"unknown trainer option(s) {sorted(unknown)}; valid: {', '.join(sorted(valid))}.")
    check_no_op_options(cfg, trainer_cfg)
    if (cfg.get("logger") or {}).get("wandb"):
        from ..training.loggers import check_wandb_env

        check_wandb_env()
    check_trainer(trainer_cfg)
    if run_dir is not None:
        check_writable("hydra.run.dir", run_dir)
        ckpt = resume_checkpoint(cfg.resume, Path(run_dir))
        if ckpt:
            check_resume_compatible(ckpt, model_cfg, OmegaConf.to_container(cfg.optim, resolve=True), data)
    return scales["mean"] if scales else None


def check_no_op_options(cfg, trainer_cfg: dict) -> None:
    """Options that would silently do nothing, or train nothing while reporting a finished run."""
    if not cfg.get("compile") and cfg.get("compile_mode", "default") != "default":
        raise ConfigError(f"compile_mode={cfg.compile_mode!r} has no effect without compile=true; valid: add "
                          "compile=true, or drop compile_mode.")
    limit = trainer_cfg.get("limit_train_batches")
    if limit is not None and not isinstance(limit, bool) and limit == 0:
        raise ConfigError(f"trainer.limit_train_batches={limit} trains nothing (the run would be reported finished "
                          "with untrained weights); valid: a positive number of batches, a fraction in (0, 1], or "
                          "null (all). To shorten a run use data.limit_train=N or trainer.max_epochs=N.")
    fast = trainer_cfg.get("fast_dev_run")
    if fast not in (None, False, 0):
        raise ConfigError(f"trainer.fast_dev_run={fast!r} is not supported: Lightning's debug mode switches off "
                          "checkpoints, logging and the schedule, so the run's files would be incomplete; valid: "
                          "false. For a quick run use data.limit_train=N trainer.max_epochs=1.")


def check_trainer(trainer_cfg: dict) -> None:
    """Build (and discard) a Lightning Trainer with these options: any value Lightning refuses is refused now."""
    import logging
    import tempfile

    import pytorch_lightning as pl

    quiet = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pl.Trainer(**{**trainer_cfg, "enable_progress_bar": False}, logger=False, enable_checkpointing=False,
                       enable_model_summary=False, default_root_dir=tmp)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 -- Lightning's MisconfigurationException, ValueError, ...
        text = " ".join(str(err).split())
        given = ", ".join(f"trainer.{k}={v!r}" for k, v in sorted(trainer_cfg.items()))
        raise ConfigError(f"Lightning refused the trainer options ({given}): {text}") from None
    finally:
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)


def check_training_memory(layout, model_cfg: dict, data: dict, trainer_cfg: dict) -> None:
    """Refuse a network whose weights, optimiser state and saved activations cannot fit (a lower bound)."""
    from ..models.budget import check_fits, estimate
    from ..models.factory import stage_widths

    widths = stage_widths(layout.arch, model_cfg.get("width", 1))
    precision = str(trainer_cfg.get("precision", "32"))
    per_element = 2 if "16" in precision else 8 if "64" in precision else 4
    need = estimate(layout, widths, model_cfg.get("stem_stride", 1), batch=data.get("batch_size", 128),
                    bytes_per_element=per_element)["train_bytes"]
    accelerator = str(trainer_cfg.get("accelerator", "cpu"))
    device = "cuda" if accelerator in ("gpu", "cuda", "auto") else "cpu"
    check_fits(need, f"training depth={layout.depth} ({sum(layout.units_per_stage):,} units) at data.batch_size="
               f"{data.get('batch_size')}", device, hint="Use a smaller data.batch_size, depth or width.")


def run_dir_of(cfg, argv: list[str]) -> str:
    """The folder a single (non-sweep) run will use: ``hydra.run.dir`` from the command line, else the
    config's default (``outputs/<data>/<name>``, or the run that ``resume`` points to)."""
    from ..training.paths import hydra_value
    from ..training.rundir import run_dir_resolver

    given = hydra_value(argv, "hydra.run.dir")  # also as ++hydra.run.dir=
    if given is not None:
        return given
    return run_dir_resolver(cfg.resume, f"outputs/{cfg.data.name}/{cfg.name}")


@dataclass(frozen=True)
class Member:
    """One checked member of a command line (the only one without ``-m``): its overrides, its composed config, its
    run folder (None for a sweep member: Hydra names it) and, with ``scale_controls``, its residual scale."""

    overrides: list[str]
    cfg: DictConfig
    run_dir: str | None
    scale: float | None


def preflight(config_name: str, argv: list[str]) -> list[Member]:
    """Compose and check every member once, before anything is written; the checked members."""
    overrides = expand_overrides(argv)
    multirun = any(a in ("-m", "--multirun") for a in argv)
    configs = [compose(config_name, o) for o in overrides]  # every key's type and range first
    run_dirs = [None if multirun else run_dir_of(cfg, argv) for cfg in configs]
    from ..training.paths import check_path, check_sweep_paths

    members = []
    for o, cfg, run_dir in zip(overrides, configs, run_dirs, strict=True):
        if not multirun and cfg.get("scale_controls"):
            raise ConfigError("scale_controls=true adds the matched Euler controls to a sweep; a single run (no -m) "
                              "has none to add. Valid: scale_controls=false, or sweep with -m (python -m "
                              "horesnet.fit -m ... scale_controls=true).")
        if run_dir is not None:  # its name's length, a file in its way (before the model is built)
            check_path("hydra.run.dir", run_dir, {str(cfg.name): "name"})
        members.append(Member(o, cfg, run_dir, check_config(cfg, run_dir)))
    if multirun:
        check_sweep_paths(argv, overrides)
    return members
