"""What a horesnet checkpoint holds beyond Lightning's own state, so that a run resumed from it -- at an epoch's end
or in the middle of one -- continues exactly as the uninterrupted run would have (docs/reliability.md, section 6):
where it stopped, the global RNG (stochastic depth draws from it) and, mid-epoch, the epoch's running training
metrics (the accuracy's counts, the loss's running sum).

``metrics.csv`` across the slices of a resumed run: the CSV logger starts the file afresh at every start, so the
rows of the earlier slices are put back in front (and kept in ``metrics.earlier.csv`` until then)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch

from .. import runs
from ..files import atomic_open


def position(trainer) -> dict:
    """Where training stands: ``epoch`` (0-based), ``batch`` (batches of that epoch trained), ``batches`` (per
    epoch), ``global_step``, and ``mid_epoch`` (some but not all of the epoch's batches trained)."""
    done = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
    total = trainer.num_training_batches
    total = int(total) if math.isfinite(total) else None
    return {"epoch": int(trainer.current_epoch), "batch": done, "batches": total,
            "global_step": int(trainer.global_step), "mid_epoch": bool(total and 0 < done < total)}


def describe(meta: dict | None, epoch: int, global_step: int, max_epochs: int | None = None) -> str:
    """``in epoch 2/3 after batch 17/40, step 57`` or ``after epoch 2/3, step 80`` (``epoch``, ``global_step``:
    Lightning's fields of the checkpoint, for checkpoints older than ``meta``)."""
    meta = meta or {}
    of = f"/{max_epochs}" if max_epochs else ""
    if meta.get("mid_epoch"):
        return f"in epoch {meta['epoch'] + 1}{of} after batch {meta['batch']}/{meta['batches']}, step {global_step}"
    return f"after epoch {epoch + 1}{of}, step {global_step}"


def capture(module) -> dict:
    """The state to save (``checkpoint["horesnet"]``), besides the timings the module keeps itself."""
    trainer = module.trainer
    state = {"position": position(trainer), "rng": torch.get_rng_state()}
    if module.device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(module.device)
    if state["position"]["mid_epoch"]:
        acc = module.train_acc
        state["train_acc"] = {name: getattr(acc, name).detach().clone() for name in acc._defaults}
        state["results"] = {}
        for key, result in trainer.fit_loop.epoch_loop._results.items():
            meta = getattr(result, "meta", None)
            if getattr(result, "is_tensor", False) and meta is not None and meta.on_epoch:
                kind = next((k for k in ("mean", "sum", "max", "min") if getattr(meta, f"is_{k}_reduction")), None)
                if kind:
                    state["results"][key] = {"kind": kind, "value": result.value.detach().clone(),
                                             "count": getattr(result, "cumulated_batch_size", None)}
    return state


def resume_loader(loader, position: dict) -> None:
    """Make the training loader skip the batches of the epoch already trained (``ResumableLoader``)."""
    if not hasattr(loader, "load_state_dict"):
        raise RuntimeError(f"cannot resume mid-epoch: the training loader ({type(loader).__name__}) cannot skip the "
                           "batches already trained (it has no load_state_dict).")
    loader.load_state_dict({"epoch": position["epoch"], "batches": position["batch"]})


def restore_rng(module, state: dict) -> None:
    if "rng" in state:
        torch.set_rng_state(state["rng"])
    if "cuda_rng" in state and module.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], module.device)


def restore_metrics(module, state: dict) -> None:
    """Before the first batch after a mid-epoch resume: the accuracy's counts of the epoch so far."""
    for name, value in (state.get("train_acc") or {}).items():
        setattr(module.train_acc, name, value.to(module.device))


def merge_results(module, state: dict) -> list[str]:
    """After the first batch after a mid-epoch resume (logged by then): fold the epoch's running sums of the logged
    training values back in. The sum ``earlier + this batch`` is the uninterrupted run's, bit for bit (addition is
    commutative). Returns the keys it could not find."""
    results = module.trainer.fit_loop.epoch_loop._results
    missing = []
    for key, saved in (state.get("results") or {}).items():
        result = results.get(key)
        if result is None:
            missing.append(key)
            continue
        combine = {"mean": torch.add, "sum": torch.add, "max": torch.maximum, "min": torch.minimum}[saved["kind"]]
        result.value = combine(saved["value"].to(result.value.device), result.value)
        if saved["kind"] == "mean" and saved.get("count") is not None:
            result.cumulated_batch_size = saved["count"].to(result.value.device) + result.cumulated_batch_size
    return missing


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def merge_metrics(earlier: list[dict], now: list[dict]) -> list[dict]:
    """``earlier``'s rows from before the first epoch (and, for rows without one or of the epoch ``now`` resumed
    in the middle of, the first step) of ``now``, then ``now``: the rows of a killed segment's unfinished epoch
    after its last checkpoint are dropped, those steps are trained again."""
    first_epoch = min((int(r["epoch"]) for r in now if r.get("epoch")), default=None)
    first_step = min((int(r["step"]) for r in now if r.get("step")), default=None)

    def before_step(r):
        return first_step is None or bool(r.get("step") and int(r["step"]) < first_step)

    def before(r):
        if r.get("epoch"):
            epoch = int(r["epoch"])
            return first_epoch is None or epoch < first_epoch or (epoch == first_epoch and before_step(r))
        return before_step(r)

    return [r for r in earlier if before(r)] + now


def write_metrics(path: Path, rows: list[dict]) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def earlier_metrics(run_dir: Path) -> list[dict]:
    """The rows logged before this resume. The CSV logger starts ``metrics.csv`` afresh, so they are also kept in
    ``metrics.earlier.csv`` until the resumed run has put them back: a resumed run that is killed loses nothing."""
    kept = runs.earlier_metrics_path(run_dir)
    earlier = merge_metrics(read_metrics(kept), read_metrics(runs.metrics_path(run_dir)))
    if earlier:
        write_metrics(kept, earlier)
    return earlier


def prepend_metrics(path: Path, earlier: list[dict], trainer) -> None:
    """Put the rows logged before a resume back in front of the resumed run's ``metrics.csv``."""
    if not earlier or not trainer.is_global_zero:
        return
    for lg in trainer.loggers:
        lg.save()
    write_metrics(path, merge_metrics(earlier, read_metrics(path)))
    runs.earlier_metrics_path(path.parent).unlink(missing_ok=True)
