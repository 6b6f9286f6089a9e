"""Interruptions: SIGINT, SIGTERM, SIGUSR1/SIGUSR2 save a resumable checkpoint after the training step in progress
and stop with status 128 + the signal's number; a second signal, or one outside training or under DDP, stops at once
(docs/reliability.md, section 6). ``trainer.checkpoint_every_n_steps=N`` also writes ``last.ckpt`` every N steps."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytorch_lightning as pl

from .. import runs

HANDLED = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2") if hasattr(signal, n))
ARGV: list[str] | None = None  # the user's command line (set by horesnet.fit.main): the continue command's base
log = logging.getLogger("horesnet.fit")


class Interrupted(BaseException):  # noqa: N818 -- not an Exception: Hydra and Lightning must let it pass
    """A run stopped by a signal. ``status`` is the exit status: 128 + the signal number (SIGINT 130, SIGTERM 143).
    ``where`` says what was saved; run_fit adds the continue command and prints it."""

    def __init__(self, signum: int, where: str = "", saved: bool = False):
        super().__init__(signum, where)
        self.signum, self.where, self.saved = signum, where, saved
        self.position: str | None = None  # of the checkpoint the run continues from (set by run_fit)

    @property
    def status(self) -> int:
        return 128 + int(self.signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


# deferring (training): a first signal only sets ``pending``; previous: the handlers ours replaced (None: not installed)
STATE = SimpleNamespace(deferring=False, pending=None, previous=None)


def _handle(signum, frame) -> None:
    if STATE.deferring and STATE.pending is None:
        STATE.pending = signum
        # os.write: the main thread may be inside a buffered write to stderr (the progress bar)
        os.write(2, f"\nhoresnet.fit: {signal.Signals(signum).name} received: stopping after this training step, with "
                    "a checkpoint (send it again to stop at once without one)\n".encode())
        return
    raise Interrupted(signum, "stopped at once, without saving")


def install() -> bool:
    """Handle the signals of HANDLED with ours (also when the parent ignored SIGINT, as a shell does for a
    background job: an explicit ``kill -INT`` must not be lost). False outside the main thread."""
    if STATE.previous is not None:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    STATE.previous = {s: signal.signal(s, _handle) for s in HANDLED}
    return True


def uninstall() -> None:
    if STATE.previous is not None and threading.current_thread() is threading.main_thread():
        for s, handler in STATE.previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
    STATE.previous = None


@contextmanager
def deferring():
    """While training: the first signal sets ``STATE.pending`` instead of stopping at once."""
    ours = STATE.previous is None and install()
    STATE.deferring, STATE.pending = True, None
    try:
        yield STATE
    finally:
        STATE.deferring = False
        if ours:
            uninstall()


def continue_command(run_dir: Path) -> str:
    """The command line that continues this run: the user's own, with ``resume=`` pointing at it (for a sweep
    member: the sweep with ``resume=auto``, which continues every unfinished member and only tests the others)."""
    if ARGV is None:
        return f"python -m horesnet.fit <same options> resume={shlex.quote(str(run_dir))}"
    args = [a for a in ARGV if not a.startswith("resume=")]
    if any(a in ("-m", "--multirun") for a in args):
        if not any(a.startswith("hydra.sweep.dir=") for a in args):
            args.append(f"hydra.sweep.dir={Path(run_dir).parent}")  # the member folder is <sweep dir>/<overrides>
        args.append("resume=auto")
    elif any(a.startswith("hydra.run.dir=") for a in args):
        args.append("resume=auto")
    else:
        args.append(f"resume={run_dir}")
    return "python -m horesnet.fit " + " ".join(shlex.quote(a) for a in args)


def interrupted_text(err: Interrupted, run_dir: Path) -> str:
    """What the console says when a run is interrupted: the signal, what was saved, the continue command."""
    last = runs.last_checkpoint(run_dir)
    if err.saved:
        kept = f"saved a resumable checkpoint {last} ({err.position})"
    elif err.position:
        kept = f"the run continues from {last} ({err.position})"
    elif last.is_file():
        kept = f"the run continues from {last}"
    else:
        kept = "no checkpoint yet: the run starts again from the beginning"
    where = f" ({err.where})" if err.where else ""
    return (f"horesnet.fit: interrupted by {err.name}{where}; {kept}.\n"
            f"  continue with: {continue_command(run_dir)}")


class Resumable(pl.Callback):
    """Mid-epoch checkpoints into ``path`` (``checkpoints/last.ckpt``) after a training step, where Lightning takes
    its own step checkpoints (so it restores its loops mid-epoch): on a pending signal (then stop) and every
    ``every_n_steps`` steps (then go on). At an epoch's last batch the epoch ends normally, with its own checkpoint."""

    def __init__(self, path: Path, every_n_steps: int | None = None):
        self.path, self.every = Path(path), every_n_steps

    def on_train_start(self, trainer, pl_module):
        if not hasattr(trainer.train_dataloader, "load_state_dict"):  # a plugin's loader that cannot skip batches
            log.warning(f"horesnet.fit: the training loader ({type(trainer.train_dataloader).__name__}) cannot "
                        "resume mid-epoch: a signal stops the run at once and it resumes from its last epoch-end "
                        "checkpoint" + ("; trainer.checkpoint_every_n_steps is ignored" if self.every else ""))
            self.every = None
            STATE.deferring = False
        if trainer.world_size > 1:
            STATE.deferring = False  # the ranks cannot agree on a step without a collective per step
        elif STATE.previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _handle)  # Lightning's own SIGTERM handler stops without a checkpoint
        if STATE.pending is not None:
            raise Interrupted(STATE.pending, "before the first training step")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        pending = STATE.pending
        stepped = (batch_idx + 1) % trainer.accumulate_grad_batches == 0  # no gradients half accumulated
        due = self.every is not None and stepped and trainer.global_step % self.every == 0
        if (pending is None or not stepped) and not due:
            return
        if batch_idx + 1 >= trainer.num_training_batches:  # the epoch's own checkpoint follows
            if pending is not None:
                trainer.should_stop = True
            return
        pl_module.check_divergence()  # never a checkpoint of a diverged network (one host read per save)
        trainer.save_checkpoint(self.path)
        if pending is not None:
            # this step's logged values, which Lightning writes right after this hook: the resumed run starts with
            # the next step, so they would be missing from metrics.csv
            trainer._logger_connector.update_train_step_metrics()
            raise Interrupted(pending, saved=True)

    def on_train_epoch_end(self, trainer, pl_module):
        if STATE.pending is not None:  # arrived during validation: the epoch ends with its checkpoint, then stop
            trainer.should_stop = True
