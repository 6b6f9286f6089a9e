"""One training run: data, model, Lightning trainer, loggers, checkpoints, final test, ``summary.json``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint

from .. import __version__, runs
from ..files import load_tensors
from ..models import count_macs, count_params
from ..models.scale import residual_scale
from ..models.torchvision import load_weights
from ..plugins import load_plugins
from . import console, interrupt, midepoch
from .checkpoint import AtomicCheckpointIO, StopAfterEpoch, check_resume_compatible, clean_orphans, resume_checkpoint
from .config import model_kwargs, plain, trainer_kwargs
from .divergence import DivergedError
from .interrupt import Interrupted, Resumable
from .loggers import make_loggers
from .machine import bf16_warning, record_cpu
from .sequence_module import make_data_module, make_module, monitor
from .wandb_links import log_checkpoint, nested_config, run_link, write_offline_files


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _val_metrics(metrics) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k.startswith("val/")}


def sweep_group() -> str | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    return Path(hc.sweep.dir).name if hc.mode == RunMode.MULTIRUN else None


def model_facts(model) -> dict:
    """What ``summary.json`` records of a network (its ``model`` field): parameters, multiply-adds per 32x32 image
    (CIFAR family), units per stage, layout, leftovers, whether it is equal-depth, and its residual scale."""
    layout = model.layout
    return {"params": count_params(model),
            "macs": count_macs(model, (model.config["in_channels"], 32, 32)) if layout.arch == "cifar" else None,
            "units_per_stage": list(layout.units_per_stage), "layout": layout.describe().splitlines(),
            "leftover_units": layout.leftovers, "equal_depth": layout.equal_depth,
            "residual_scale": residual_scale(model)}


def run_fit(cfg, run_dir: Path, group: str | None = None) -> dict:
    """Train, validate each epoch, test the final-epoch model once; return the summary written to disk.
    A diverged run writes a summary with status ``diverged`` and raises DivergedError."""
    load_plugins(cfg.get("plugins") or [])  # a launcher may run this job in a fresh process
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    model_cfg = model_kwargs(cfg)
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    data = make_data_module(data_cfg, int(cfg.seed))  # images, or sequences (docs/transformers.md)
    module = make_module(model_cfg, OmegaConf.to_container(cfg.optim, resolve=True), bool(cfg.channels_last),
                         data_cfg, OmegaConf.to_container(cfg.divergence, resolve=True),
                         compile=cfg.get("compile_mode", "default") if cfg.get("compile") else None,
                         grad_checkpointing=bool(cfg.get("grad_checkpointing", False)),
                         grad_checkpointing_stages=plain(cfg.get("grad_checkpointing_stages")))
    if cfg.get("weights"):  # a torchvision ResNet's weights, on any scheme of the same depth
        load_weights(module.model, cfg.weights)
    info = model_facts(module.model)
    run_config = OmegaConf.to_container(cfg, resolve=True)
    clean_orphans(run_dir)  # temporary files of a checkpoint write that was killed
    ckpt = resume_checkpoint(cfg.resume, run_dir)
    saved = check_resume_compatible(ckpt, model_cfg, OmegaConf.to_container(cfg.optim, resolve=True),
                                    data_cfg) if ckpt else None
    logger_cfg = OmegaConf.to_container(cfg.logger, resolve=True)
    loggers = make_loggers(logger_cfg, run_dir, nested_config(run_config, info), group)
    for lg in loggers[1:]:
        console.quiet_wandb(lg)  # before the W&B run starts
    wandb_run = loggers[1].experiment if len(loggers) > 1 else None  # started now: its id goes into summary.json
    best_metric, best_mode = monitor(data_cfg)  # val/acc1 (max); val/bpc (min) for language modelling
    checkpoint = ModelCheckpoint(dirpath=runs.checkpoints_dir(run_dir), filename=runs.BEST, monitor=best_metric,
                                 mode=best_mode, save_top_k=1, auto_insert_metric_name=False,
                                 enable_version_counter=False)
    last = ModelCheckpoint(dirpath=runs.checkpoints_dir(run_dir), filename=runs.LAST, monitor=None, save_top_k=1,
                           enable_version_counter=False)  # rewritten after every epoch
    # our one bar for the whole run (Lightning's own bars are off: per-epoch ETA, no validation accuracy)
    callbacks = [checkpoint, last, LearningRateMonitor(logging_interval="step"),
                 console.RunProgress(show_bar=bool(cfg.trainer.get("enable_progress_bar", True))),
                 Resumable(runs.last_checkpoint(run_dir), cfg.trainer.get("checkpoint_every_n_steps"))]
    if cfg.stop_after_epoch:
        callbacks.append(StopAfterEpoch(int(cfg.stop_after_epoch)))
    trainer_cfg = trainer_kwargs(cfg)
    trainer_cfg["enable_progress_bar"] = False
    trainer = pl.Trainer(**trainer_cfg, logger=loggers, callbacks=callbacks, plugins=[AtomicCheckpointIO()],
                         default_root_dir=str(run_dir))
    if trainer.is_global_zero:
        devices = f" x{trainer.num_devices}" if trainer.num_devices > 1 else ""
        console.log.info(console.banner(run_config, info, run_dir, f"{trainer.strategy.root_device}{devices}"))
        if cfg.resume not in (None, "", "null"):
            console.log.info(_resume_line(cfg.resume, ckpt, saved, run_dir, trainer.max_epochs))
        warning = bf16_warning(str(trainer_cfg.get("precision", "")), trainer.strategy.root_device.type)
        if warning:
            console.log.warning(warning)
    earlier = midepoch.earlier_metrics(run_dir) if ckpt and trainer.is_global_zero else []
    base = {"run_dir": str(run_dir), "config": run_config, "model": info, "resumed_from": str(ckpt) if ckpt else None,
            "version": __version__, "git_commit": git_commit(), "torch": torch.__version__,
            "device": str(module.device), "wandb": run_link(wandb_run) if wandb_run is not None else None,
            **(record_cpu(run_dir) if trainer.is_global_zero else {})}
    try:
        try:
            with interrupt.deferring() as signals:  # a signal now saves a mid-epoch checkpoint (Resumable)
                trainer.fit(module, datamodule=data, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
            if signals.pending is not None:  # it came at an epoch's end: the epoch ended with its checkpoint
                raise Interrupted(signals.pending, f"at the end of epoch {trainer.current_epoch}")
        except DivergedError as err:
            summary = {"status": "diverged", "error": str(err), **base, "epochs_done": trainer.current_epoch,
                       "train_time_s": module.train_time_s, "wall_time_s": module.wall_time_s,
                       "last_checkpoint": str(runs.last_checkpoint(run_dir))
                       if runs.last_checkpoint(run_dir).is_file() else None}
            midepoch.prepend_metrics(runs.metrics_path(run_dir), earlier, trainer)
            if trainer.is_global_zero:
                runs.write_summary(run_dir, summary)
                for lg in loggers[1:]:
                    lg.experiment.summary.update({"status": "diverged"})
            raise
        finished = trainer.current_epoch >= trainer.max_epochs and not trainer.interrupted
        summary = {"status": "finished" if finished else "stopped", **base, "epochs_done": trainer.current_epoch,
                   "train_time_s": module.train_time_s, "images_per_sec": module.images_per_sec,
                   "best_checkpoint": checkpoint.best_model_path or None}
        val = _val_metrics(trainer.callback_metrics)
        if not val and ckpt:  # resumed after the final checkpoint: nothing was trained, validate the final model
            val = _val_metrics((trainer.validate(module, datamodule=data, verbose=False) or [{}])[0])
        summary.update(val=val, is_global_zero=trainer.is_global_zero)
        if finished:
            test = trainer.test(module, datamodule=data, verbose=False)
            summary["test"] = {k: float(v) for k, v in (test[0] if test else {}).items()}
        summary["wall_time_s"] = module.wall_time_s
        midepoch.prepend_metrics(runs.metrics_path(run_dir), earlier, trainer)
        if not finished:
            runs.write_progress(run_dir, summary)
        elif trainer.is_global_zero:
            runs.write_summary(run_dir, summary)
            final = {f"final/{k}": v for k, v in {**summary["val"], **summary["test"]}.items()}
            for lg in loggers[1:]:
                lg.experiment.summary.update(final)
            if wandb_run is not None and (logger_cfg.get("wandb") or {}).get("log_model") and \
                    summary["best_checkpoint"]:
                log_checkpoint(wandb_run, summary["best_checkpoint"], {**final, "block": cfg.block,
                                                                       "depth": cfg.depth, "run_dir": str(run_dir)})
        return summary
    except Interrupted as err:  # in training (Resumable saved a checkpoint) or in the final test
        _interrupted(err, trainer, module, base, run_dir, earlier)
    finally:
        for lg in loggers[1:]:
            try:
                write_offline_files(lg.experiment, runs.metrics_path(run_dir))
                lg.experiment.finish()
            except Exception:  # noqa: BLE001 -- never let logging teardown hide the real outcome
                pass


def _resume_line(resume, ckpt: Path | None, saved: dict | None, run_dir: Path, max_epochs) -> str:
    """What the run continues, or why it starts from the beginning (printed under the banner)."""
    if ckpt is not None:
        where = midepoch.describe((saved.get("horesnet") or {}).get("position"), int(saved.get("epoch", 0)),
                                  int(saved.get("global_step", 0)), max_epochs)
        return f"  resumed     {ckpt} ({where})"
    if resume == "auto":
        return (f"  resumed     nothing: no unfinished run to continue (resume=auto continues a run folder with "
                f"checkpoints/last.ckpt and no summary.json); training from the start in {run_dir}")
    return f"  resumed     nothing: {run_dir} has no checkpoint; training from the start"


def _interrupted(err: Interrupted, trainer, module, base: dict, run_dir: Path, earlier: list[dict]) -> None:
    """A signal stopped the run: write ``progress.json`` (status ``interrupted``), keep the metrics, re-raise with
    the position of the checkpoint the run continues from."""
    last = runs.last_checkpoint(run_dir)
    if err.saved:
        err.position = midepoch.describe(midepoch.position(trainer), trainer.current_epoch, trainer.global_step,
                                         trainer.max_epochs)
    elif last.is_file():
        saved = load_tensors(last, "checkpoint")
        err.position = midepoch.describe((saved.get("horesnet") or {}).get("position"), int(saved.get("epoch", 0)),
                                         int(saved.get("global_step", 0)), trainer.max_epochs)
    summary = {"status": "interrupted", "signal": err.name, "where": err.where, **base,
               "epochs_done": trainer.current_epoch, "global_step": trainer.global_step,
               "train_time_s": module.train_time_s, "wall_time_s": module.wall_time_s,
               "last_checkpoint": str(last) if last.is_file() else None, "position": err.position}
    if trainer.is_global_zero:
        for lg in trainer.loggers:
            lg.save()  # Lightning finalises its loggers only when training ends
    midepoch.prepend_metrics(runs.metrics_path(run_dir), earlier, trainer)
    if trainer.is_global_zero:
        runs.write_progress(run_dir, summary)
    raise err


def report(summary: dict) -> str:
    """The short final report printed by ``python -m horesnet.fit``."""
    cfg, m = summary["config"], summary["model"]
    t, v = summary.get("test", {}), summary.get("val", {})
    lines = [f"horesnet.fit: {cfg['block']} depth {cfg['depth']} on {cfg['data']['name']} "
             f"({summary['status']} after {summary['epochs_done']} epoch(s))"]
    if t:
        lines.append(f"  test  acc1 {100 * t.get('test/acc1', float('nan')):.2f}%  acc5 "
                     f"{100 * t.get('test/acc5', float('nan')):.2f}%  loss {t.get('test/loss', float('nan')):.4f}  "
                     f"ECE {t.get('test/ece', float('nan')):.4f}")
    if "test/bpc" in t or "val/bpc" in v:
        lines.append(f"  bits per character: test {t.get('test/bpc', float('nan')):.4f}  "
                     f"val {v.get('val/bpc', float('nan')):.4f}")
    if v:
        lines.append(f"  val   acc1 {100 * v.get('val/acc1', float('nan')):.2f}%  "
                     f"loss {v.get('val/loss', float('nan')):.4f}")
    paper = cfg.get("paper") or {}
    if paper.get("test_error") is not None and t:
        lines.append(f"  paper test error {paper['test_error']}% ({paper.get('source', '?')}); "
                     f"this run {100 * (1 - t.get('test/acc1', float('nan'))):.2f}%")
    elif paper:
        lines.append("  paper: " + "; ".join(f"{k} {v}" for k, v in paper.items() if v is not None))
    macs = f"{m['macs'] / 1e6:.1f}M" if m.get("macs") else "n/a"
    scale = m.get("residual_scale")
    lines += [f"  params {m['params']:,}  multiply-adds/image {macs}  units/stage {m['units_per_stage']}"
              + (f"  residual scale {scale['mean']:.4g}" if scale else ""),
              f"  wall time {summary['wall_time_s']:.1f}s  training {summary['train_time_s']:.1f}s  "
              f"{summary['images_per_sec']:.0f} img/s (last epoch)",
              f"  outputs: {summary['run_dir']}"]
    if summary["status"] != "finished":
        lines.append(f"  stopped early; continue with: {interrupt.continue_command(Path(summary['run_dir']))}")
    return "\n".join(lines)
