"""``python -m horesnet.analyze ckpt=PATH study=lesion|...|all``: take a trained network apart.

Writes one folder with ``<table>.csv``, ``<table>.json`` and ``<table>.png`` per table of each study and logs the
tables and plots to W&B (offline when there is no API key or network). The studies, their options and what they
need (``study=paths`` works without a checkpoint) come from the study registry (docs/extending_studies.md).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from .. import analysis as A
from .. import runs
from ..analysis import progress
from ..analysis.registry import Study, get_study, list_studies
from ..errors import PLUGIN_HINT, ConfigError, check_choice, check_writable
from ..training.config import model_from_config, model_kwargs
from .command import run_command
from .compose import compose


def load_trained(ckpt: str):
    """(model on the CPU in eval mode, its data config, its run folder, its model config) from a horesnet training
    checkpoint, loaded with ``torch.load(weights_only=True)``: the network is rebuilt from the checkpoint's own
    model config and its weights are loaded strictly."""
    from ..models import build_model
    from ..models.config import complete
    from ..training.checkpoint import check_checkpoint

    path = runs.checkpoint_at(Path(ckpt).expanduser())  # a run folder: its last checkpoint
    if not path.is_file():
        raise ConfigError(f"ckpt={ckpt!r}: no such file; give a checkpoint written by horesnet.fit "
                          "(<run folder>/checkpoints/last.ckpt or best.ckpt).")
    saved = check_checkpoint(path)
    hp = saved["hyper_parameters"]
    model_cfg = dict(hp["model"])
    weights = {k.removeprefix("model."): v for k, v in saved["state_dict"].items() if k.startswith("model.")}
    try:
        model = build_model(complete(model_cfg))
        model.load_state_dict(weights, strict=True)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 -- a damaged checkpoint can fail in many ways
        raise ConfigError(f"{path} could not be loaded as a horesnet model ({type(err).__name__}: "
                          f"{str(err)[:300]}).") from None
    return model.eval(), dict(hp.get("data") or {}), runs.run_folder_of(path), model_cfg


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; refused if it is not here."""
    cuda = torch.cuda.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "cpu")
    valid = ["auto", "cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())] if cuda else [])
    if name not in valid:
        raise ConfigError(f"unknown or unavailable device={name!r}; valid choices on this machine: "
                          f"{', '.join(repr(v) for v in valid)}.")
    return torch.device(name)


def check_model_overrides(given: dict, saved: dict, path) -> None:
    """Refuse model keys on the command line that contradict the checkpoint's own model config."""
    clashes = [f"{k}={v!r} on the command line but {saved.get(k)!r} in the checkpoint" for k, v in given.items()
               if v != saved.get(k)]
    if clashes:
        raise ConfigError(f"the checkpoint {path} fixes the network it holds, and the command line contradicts it: "
                          f"{'; '.join(clashes)}. Drop these model keys (the checkpoint's values are used), or "
                          "train the other network.")


def _given_model_keys(argv: list[str], cfg) -> dict:
    """Model keys the user set on the command line, with their composed values."""
    from ..models import MODEL_KEYS

    keys = {a.partition("=")[0].lstrip("+~") for a in argv if "=" in a}
    values = OmegaConf.to_container(cfg, resolve=True)
    return {k: values[k] for k in MODEL_KEYS if k in keys}


def eval_data(data_cfg: dict, cfg, device) -> A.EvalData:
    from ..training.sequence_module import make_data_module

    data_cfg = dict(data_cfg)
    if cfg.data_name:
        data_cfg["name"] = cfg.data_name
    if cfg.data_root:
        data_cfg["root"] = cfg.data_root
    if not data_cfg.get("name"):
        raise ConfigError("the checkpoint does not say which dataset it was trained on; give data_name=...")
    # images or sequences (limit counts sequences, error and loss are per token)
    dm = make_data_module({k: v for k, v in data_cfg.items() if not k.startswith("limit_")}, seed=0)
    dm.setup()
    return A.from_datamodule(dm, cfg.split, cfg.limit, cfg.batch_size).to(device)


def run_study(study: Study, model, data, values: dict) -> dict[str, list[dict]]:
    """``{table name: records}`` for one study; a table the study did not declare (no plot) is a bug of the study."""
    results = study.compute(model, data, values)
    undeclared = [name for name in results if name not in study.plots]
    if undeclared:
        raise TypeError(f"study {study.name!r} returned table(s) {undeclared} but declares plots only for "
                        f"{list(study.plots)}; register a plot for every table it writes.")
    return results


def analyze(cfg, given: dict | None = None) -> Path:
    """Run the studies of ``cfg``; ``given`` holds the model keys set on the command line (refused when they
    contradict the checkpoint)."""
    names = list_studies() if cfg.study == "all" else [s.strip() for s in str(cfg.study).split(",")]
    for s in names:
        check_choice("study", s, [*list_studies(), "all"], PLUGIN_HINT)
    studies = [get_study(s) for s in names]
    config = OmegaConf.to_container(cfg, resolve=True)
    values = {s.name: s.values(config) for s in studies}  # every option checked before any work
    check_choice("split", cfg.split, ("test", "val"))
    device = resolve_device(cfg.device)
    if cfg.ckpt:
        model, data_cfg, run_dir, saved = load_trained(cfg.ckpt)
        check_model_overrides(given or {}, saved, cfg.ckpt)
        plain = model.config.get("shortcut") == "plain"
        title = f"{'plain' if plain else model.config['block']}-{model.layout.depth}"
        out = Path(cfg.out) if cfg.out else runs.analysis_dir(run_dir)
    else:
        if any(s.needs_checkpoint for s in studies):
            alone = [f"study={s}" for s in list_studies() if not get_study(s).needs_checkpoint]
            raise ConfigError(f"study={cfg.study!r} needs a trained network: give ckpt=PATH "
                              f"(only {', '.join(alone)} {'works' if len(alone) == 1 else 'work'} from a config "
                              "alone).")
        model, data_cfg, run_dir = model_from_config(cfg), {}, None
        title = f"{cfg.block}-{model.layout.depth}"
        out = Path(cfg.out) if cfg.out else Path("outputs") / "analysis" / f"{cfg.block}-d{model.layout.depth}"
    check_writable("out", out)  # before any work: hours of analysis are not lost to an unwritable folder
    model = model.to(device).eval()
    skipped = {s.name: why for s in studies if (why := s.skip_reason(model, values[s.name]))}
    if skipped and cfg.study != "all" and len(skipped) == len(studies):
        raise ConfigError("; ".join(f"study={n} does not apply to this network: {why}" for n, why in skipped.items()))
    for name, why in skipped.items():
        print(f"  skipped {name}: {why}", flush=True)  # at once, before any work
    todo = [s for s in studies if s.name not in skipped]
    manifest = progress.read_manifest(out)
    source = {"ckpt": _fingerprint(cfg.ckpt), "split": cfg.split, "limit": cfg.limit, "data_name": cfg.data_name,
              "model": None if cfg.ckpt else model_kwargs(cfg)}
    kept = [s.name for s in todo if not cfg.fresh
            and progress.finished(manifest, out, s.name, s.tables, {**source, "options": values[s.name]})]
    old = [name for name in manifest["studies"] if progress.outdated(manifest, name)]
    redone = [s.name for s in todo if s.name in old]
    if redone:  # never a folder of percent and fractions side by side without a word
        print(f"  redoing {', '.join(redone)}: {out} holds {'it' if len(redone) == 1 else 'them'} in percent "
              "(an older horesnet); tables now hold fractions in [0, 1]", flush=True)
    if left := [name for name in old if name not in redone]:
        print(f"  note: {', '.join(left)} in {out} still hold percent (an older horesnet); "
              f"study={','.join(left)} rewrites {'it' if len(left) == 1 else 'them'} as fractions in [0, 1]",
              flush=True)
    if kept:
        print(f"  kept {', '.join(kept)}: already in {out} from the same checkpoint and options (fresh=true redoes "
              "them)", flush=True)
    todo = [s for s in todo if s.name not in kept]
    data = eval_data(data_cfg, cfg, device) if any(s.needs_data for s in todo) else None
    counted = progress.CountedData(data) if data is not None else None
    # every figure says what it was measured on: dataset, split and number of images
    measured = f"{title} ({data.name.replace(':', ' ')} split, {data.size:,} images)" if data is not None else title
    done, logged = {}, {}
    for s in todo:
        passes = s.passes(model, values[s.name])
        total = passes * len(counted.batches) if passes and counted is not None and s.needs_data else None
        started = time.time()
        with progress.study_bar(s.name, total, enabled=counted is not None and s.needs_data) as bar:
            if counted is not None:
                counted.track(bar)
            try:
                results = run_study(s, model, counted if s.needs_data else None, values[s.name])
            except KeyboardInterrupt:
                bar.close()
                print(f"horesnet.analyze: interrupted during {s.name}; kept {', '.join([*kept, *done]) or 'nothing'}"
                      f" in {out}. The same command runs the rest.", file=sys.stderr, flush=True)
                raise
            except ConfigError as err:
                if cfg.study != "all":
                    raise
                skipped[s.name] = str(err)  # study=all goes on with what applies to this network
                print(f"  skipped {s.name}: {err}", flush=True)
                continue
        out.mkdir(parents=True, exist_ok=True)  # only now: a refused command line leaves no folder behind
        for name, records in results.items():  # written now: an interruption later keeps this study
            A.write_table(records, out, name)
            s.plots[name](records, out / f"{name}.png", measured if s.needs_data else title)
            logged[name] = records
        seconds = time.time() - started
        progress.record(out, manifest, s.name, {**source, "options": values[s.name]}, list(results), seconds)
        for name, records in results.items():
            done[name] = f"{name} ({len(records)} rows, {round(seconds, 2)}s)"
        print(f"  done {s.name} in {seconds:.1f}s: {', '.join(f'{n}.csv/.json/.png' for n in results)}", flush=True)
    if logged:
        _log_wandb(cfg, logged, out, run_dir, title, model, saved if cfg.ckpt else model_kwargs(cfg))
    print(f"horesnet.analyze: {title}: " + (", ".join(done.values()) or "nothing new")
          + (f"; skipped {', '.join(skipped)}" if skipped else ""))
    print(f"  wrote {out}/<study>.csv, .json, .png")
    return out


def _fingerprint(ckpt) -> dict | None:
    """The checkpoint a study was computed from: its path, size and modification time."""
    if not ckpt:
        return None
    path = runs.checkpoint_at(Path(ckpt).expanduser())
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime": st.st_mtime}


def _log_wandb(cfg, tables, out: Path, run_dir, title: str, model, model_cfg: dict) -> None:
    """One W&B analysis run in the training run's group. Its config describes the network analysed (the
    checkpoint's own model options and the network's facts, nested under ``model`` as in the training run), not the
    command line's model defaults."""
    if cfg.wandb == "disabled":
        return
    import wandb

    from ..training.loggers import log_run, table, wandb_mode
    from ..training.run import model_facts
    from ..training.wandb_links import nested_config, training_link

    mode = wandb_mode(cfg.wandb)
    if mode == "disabled":
        return
    link = training_link(run_dir)  # the training run's W&B id and group, from its summary.json
    log_run([{f"{name}/table": table(records), f"{name}/plot": wandb.Image(str(out / f"{name}.png"))}
             for name, records in tables.items()],
            project=link.get("project") or "horesnet", name=f"analysis-{title}", job_type="analysis",
            dir=str(out), mode=mode, group=link.get("group"), reinit="create_new",
            config={**nested_config({**OmegaConf.to_container(cfg, resolve=True), **model_cfg}, model_facts(model)),
                    "train_run_id": link.get("id"),
                    "train_run_dir": str(Path(run_dir).resolve()) if run_dir else None})


def main(argv: list[str] | None = None) -> int:
    return run_command("analyze", argv, _analyze)


def _analyze(argv: list[str]) -> None:
    cfg = compose("analyze", argv)
    analyze(cfg, _given_model_keys(argv, cfg))
