"""``python -m horesnet.fit block=rk4 depth=56``: train any variant with the He et al. 2015 recipe.

Hydra command line: top-level model keys (``block``, ``depth``, ``unit``, ...), config groups ``data``,
``optim``, ``trainer``, ``logger``; ``-m`` sweeps (``-m block=euler,midpoint,rk4 seed=0,1,2``). The whole
command line is checked before any output folder is created (exit status 2 for bad input); a run that diverges
stops with status ``diverged`` in its summary and exit status 3; a run stopped by a signal saves a resumable
checkpoint and exits with 128 + the signal's number (SIGINT 130, SIGTERM 143); a run folder that another live
process writes is refused (exit status 2): ``docs/reliability.md``.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from omegaconf import OmegaConf

from .. import data  # noqa: F401 -- registers the built-in datasets in Hydra's ConfigStore before @hydra.main
from ..errors import ConfigError
from ..models.config import store_model_node
from ..plugin_errors import CAUGHT, from_plugin, plugin_error
from ..plugins import load_plugins, plugins_from_argv
from ..training import console, interrupt, runlock
from ..training.interrupt import Interrupted
from ..training.rundir import run_dir_resolver
from .command import error, run_command

log = console.log

store_model_node()  # the Hydra ``model`` config (block=, depth=, ...), made from ModelConfig
if not OmegaConf.has_resolver("horesnet_run_dir"):
    OmegaConf.register_new_resolver("horesnet_run_dir", run_dir_resolver, use_cache=True)


@dataclass
class FitCommand:
    """One ``fit`` command from its checks to its end: the command line Hydra gets (made canonical, the checked run
    folder pinned), what the checks found, and what the training jobs report back."""

    argv: list[str]
    new_run_dir: Path | None = None  # the single run's folder, when this command is the one creating it
    lock: Path | None = None  # the single run's fit.lock, held from the checks until the process ends
    controls: list[list[str]] = field(default_factory=list)  # scale_controls: the Euler control sweeps to run after
    sweep_dir: str | None = None  # with -m: the sweep folder
    done: list[str] = field(default_factory=list)  # run folders finished by this command


def _fail(err: Exception, status: int = 2) -> None:
    """Inside the Hydra task (which would print a ConfigError's traceback): the error line, then exit."""
    error("fit", err)
    sys.exit(status)


def _plugin_error(err: BaseException, what: str) -> ConfigError:
    """``err`` as a plugin error when plugin code raised it; anything else re-raised unchanged."""
    file = from_plugin(err)
    if file is None:
        raise err
    return plugin_error(f"plugin code run while {what}", err, file)


def _run_hydra(command: FitCommand) -> None:
    """Train each composed config (one, or every sweep member) into its run folder: the Hydra task of this command,
    handed the checked command line for this call only (``@hydra.main`` reads it from ``sys.argv``)."""

    @hydra.main(config_path="../configs", config_name="fit", version_base="1.3")
    def train(cfg) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from ..training.divergence import DivergedError
        from ..training.run import report, run_fit, sweep_group

        console.install()  # Hydra has just configured this job's logging: Lightning's records go through it
        hc = HydraConfig.get()
        run_dir = Path(hc.runtime.output_dir)
        member_lock = None
        if hc.mode == RunMode.MULTIRUN:
            command.sweep_dir = hc.sweep.dir
            if runlock.writer_process():  # a sweep member's folder: locked once Hydra has made it
                try:
                    member_lock = runlock.acquire(run_dir)
                except ConfigError as err:
                    _fail(err)
        try:
            summary = run_fit(cfg, run_dir, sweep_group())
        except ConfigError as err:  # found only once the data is read (a corrupt file): no half-made run folder
            if command.new_run_dir and run_dir.resolve() == command.new_run_dir:
                shutil.rmtree(run_dir, ignore_errors=True)
            _fail(err)
        except DivergedError as err:  # summary.json says status "diverged"; exit status 3 tells scripts
            _fail(err, 3)
        except Interrupted as err:  # progress.json says status "interrupted"; 130 (SIGINT), 143 (SIGTERM), ...
            log.warning(interrupt.interrupted_text(err, run_dir))
            sys.exit(err.status)
        except CAUGHT as err:  # plugin code that raised or called sys.exit in training: not "finished"
            _fail(_plugin_error(err, "training"))
        finally:
            runlock.release(member_lock)
        if summary.get("is_global_zero", True):
            log.info(report(summary))
            command.done.append(summary["run_dir"])

    saved = list(sys.argv)
    sys.argv[1:] = command.argv
    try:
        train()
    finally:
        sys.argv[:] = saved


def main(argv: list[str] | None = None) -> int:
    interrupt.install()  # from now on SIGINT/SIGTERM/SIGUSR1/SIGUSR2 end the command with 128 + the signal
    command = FitCommand(argv=sys.argv[1:] if argv is None else list(argv))
    interrupt.ARGV = list(command.argv)  # the base of the continue command printed when a run is interrupted
    try:
        return run_command("fit", command.argv, lambda checked: _fit(command, checked))
    except Interrupted as err:  # outside training (start-up, the checks): nothing unsaved
        print(f"horesnet.fit: interrupted by {err.name} before training started; nothing was trained.",
              file=sys.stderr, flush=True)
        return err.status
    finally:
        runlock.release(command.lock)


def _fit(command: FitCommand, argv: list[str]) -> int:
    """The command line made canonical (``resume=PATH`` of a sweep member, as the shell gives it) is checked, then
    trained by Hydra; with ``scale_controls`` the control sweeps follow."""
    command.argv = argv
    console.install()  # third-party warnings of the checks below stay off the console
    load_plugins(plugins_from_argv(argv))  # registered datasets are config-group choices for Hydra too
    if not any(a.startswith(("--cfg", "--help", "-h", "--info", "--hydra-help", "-c")) for a in argv):
        _check(command)
    _run_hydra(command)
    if command.sweep_dir and command.done:
        print(f"horesnet.fit: sweep finished: {len(command.done)} run(s) in {command.sweep_dir}\n"
              f"  compare them: python -m horesnet.compare {command.sweep_dir}", flush=True)
    if command.controls:
        from .controls import run_controls

        return run_controls(command.controls, command.sweep_dir)
    return 0


def _check(command: FitCommand) -> None:
    """The whole command line checked before anything is written (:func:`preflight`); a single run's folder pinned
    on the command line and locked; with ``-m ... scale_controls=true`` the control sweeps planned and checked."""
    from ..training.paths import hydra_value
    from .controls import control_sweeps
    from .preflight import preflight

    argv = command.argv
    try:
        members = preflight("fit", argv)
    except ConfigError:
        raise
    except CAUGHT as err:  # a plugin's dataset, scheme or placement failed (sys.exit too): a plugin error
        raise _plugin_error(err, "checking the command line") from None
    run_dirs = [m.run_dir for m in members]
    if len(run_dirs) == 1 and run_dirs[0]:
        if not any(a.lstrip("+").startswith("hydra.run.dir=") for a in argv) and "'" not in run_dirs[0]:
            command.argv = [*argv, f"hydra.run.dir='{run_dirs[0]}'"]  # the very folder the checks were made for
        if not Path(run_dirs[0]).exists():
            command.new_run_dir = Path(run_dirs[0]).resolve()
        if runlock.writer_process():  # before Hydra writes .hydra/ and fit.log: a refused run touches no file there
            command.lock = runlock.acquire(Path(run_dirs[0]))
    if not any(a in ("-m", "--multirun") for a in argv) or not any(a.startswith("scale_controls=") for a in argv):
        return
    command.controls = control_sweeps(members)
    for overrides in command.controls:
        preflight("fit", ["-m", *overrides])
    command.sweep_dir = hydra_value(argv, "hydra.sweep.dir")
    if command.controls and command.sweep_dir is None:
        command.sweep_dir = time.strftime("multirun/%Y-%m-%d_%H-%M-%S")
        command.argv = [*command.argv, f"hydra.sweep.dir={command.sweep_dir}"]
