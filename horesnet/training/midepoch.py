"""What a horesnet checkpoint holds beyond Lightning's own state, so that a run resumed from it -- at an epoch's end
or in the middle of one -- continues exactly as the uninterrupted run would have:

- where it stopped (epoch, batches of the epoch trained, global step): for the console and the progress bar;
- the global RNG (stochastic depth draws from it; Lightning does not save it);
- mid-epoch only: the epoch's running training metrics (the accuracy's counts, the loss's running sum), so that the
  epoch-mean training loss and accuracy of the resumed epoch still cover all its batches.

Lightning itself restores the weights, the optimiser, the lr schedule and its loops' counters; the training data
loader skips the batches already trained (``horesnet.data.module.ResumableLoader``); the augmentation is seeded by
the global step.
"""

from __future__ import annotations

import math

import torch


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
                kind = "mean" if meta.is_mean_reduction else "sum" if meta.is_sum_reduction else \
                    "max" if meta.is_max_reduction else "min" if meta.is_min_reduction else None
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
        value = saved["value"].to(result.value.device)
        if saved["kind"] in ("mean", "sum"):
            result.value = value + result.value
        else:
            result.value = (torch.maximum if saved["kind"] == "max" else torch.minimum)(value, result.value)
        if saved["kind"] == "mean" and saved.get("count") is not None:
            result.cumulated_batch_size = saved["count"].to(result.value.device) + result.cumulated_batch_size
    return missing
