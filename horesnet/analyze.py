"""``python -m horesnet.analyze ckpt=PATH study=lesion|...|all``: take a trained network apart.

Writes one folder with ``<study>.csv``, ``<study>.json`` and ``<study>.png`` per study and logs the tables and
plots to W&B (offline when there is no API key or network). ``study=paths`` works without a checkpoint.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from . import analysis as A
from .analysis.plots import PLOTS
from .config import compose, model_from_config
from .errors import ConfigError, check_choice, check_writable

STUDIES = ("lesion", "lesion_random", "reorder", "paths", "effective", "responses", "refinement", "robustness")


def load_trained(ckpt: str):
    """(model on the CPU in eval mode, its data config, its run folder, its model config) from a horesnet training
    checkpoint, loaded with ``torch.load(weights_only=True)``: the network is rebuilt from the checkpoint's own
    model config and its weights are loaded strictly."""
    from .models import build_model
    from .training.checkpoint import check_checkpoint

    path = Path(ckpt).expanduser()
    if path.is_dir():  # a run folder: its last checkpoint
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise ConfigError(f"ckpt={ckpt!r}: no such file; give a checkpoint written by horesnet.fit "
                          "(<run folder>/checkpoints/last.ckpt or best.ckpt).")
    saved = check_checkpoint(path)
    hp = saved["hyper_parameters"]
    model_cfg = dict(hp["model"])
    prefix = "model."
    weights = {k[len(prefix):]: v for k, v in saved["state_dict"].items() if k.startswith(prefix)}
    try:
        model = build_model(**model_cfg)
        model.load_state_dict(weights, strict=True)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 -- a damaged checkpoint can fail in many ways
        raise ConfigError(f"{path} could not be loaded as a horesnet model ({type(err).__name__}: "
                          f"{str(err)[:300]}).") from None
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return model.eval(), dict(hp.get("data") or {}), run_dir, model_cfg


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
    from .config import MODEL_KEYS

    keys = {a.partition("=")[0].lstrip("+~") for a in argv if "=" in a}
    values = OmegaConf.to_container(cfg, resolve=True)
    return {k: values[k] for k in MODEL_KEYS if k in keys}


def eval_data(data_cfg: dict, cfg, device) -> A.EvalData:
    from .data import ArrayDataModule

    data_cfg = dict(data_cfg)
    if cfg.data_name:
        data_cfg["name"] = cfg.data_name
    if cfg.data_root:
        data_cfg["root"] = cfg.data_root
    if not data_cfg.get("name"):
        raise ConfigError("the checkpoint does not say which dataset it was trained on; give data_name=...")
    keep = {k: v for k, v in data_cfg.items() if not k.startswith("limit_")}
    dm = ArrayDataModule(**keep)
    dm.setup()
    return A.from_datamodule(dm, cfg.split, cfg.limit, cfg.batch_size).to(device)


def run_study(study: str, model, data, cfg) -> dict[str, list[dict]]:
    """``{table name: records}`` for one study."""
    if study == "paths":
        counts = A.path_lengths(model, weighted=bool(cfg.weighted))
        return {"paths": [{"length": k, "count": c} for k, c in enumerate(counts)]}
    if study == "lesion":
        grains = ("unit", "block") if cfg.granularity == "both" else (cfg.granularity,)
        return {("lesion" if g == "unit" else "lesion_block"): A.lesion_single(model, data, g) for g in grains}
    if study == "lesion_random":
        return {study: A.lesion_random(model, data, list(cfg.ks), cfg.trials, cfg.seed)}
    if study == "reorder":
        return {study: A.reorder(model, data, list(cfg.swaps), cfg.trials, cfg.seed)}
    if study == "effective":
        sub = A.EvalData(_first(data, cfg.effective_images), data.pixel_std, data.name)
        return {study: A.effective_paths(model, sub, cfg.samples_per_length, cfg.seed)}
    if study == "responses":
        return {study: A.responses(model, data)}
    if study == "refinement":
        return {study: A.refinement(model, data)}
    return {study: A.robustness(model, data, list(cfg.sigmas), cfg.seed)}


def _first(data: A.EvalData, n: int):
    out, left = [], n
    for x, y in data.batches:
        if left <= 0:
            break
        out.append((x[:left], y[:left]))
        left -= len(y)
    return out


def analyze(cfg, given: dict | None = None) -> Path:
    """Run the studies of ``cfg``; ``given`` holds the model keys set on the command line (refused when they
    contradict the checkpoint)."""
    studies = list(STUDIES) if cfg.study == "all" else [s.strip() for s in str(cfg.study).split(",")]
    for s in studies:
        check_choice("study", s, STUDIES + ("all",))
    check_choice("granularity", cfg.granularity, ("unit", "block", "both"))
    check_choice("split", cfg.split, ("test", "val"))
    device = resolve_device(cfg.device)
    if cfg.ckpt:
        model, data_cfg, run_dir, saved = load_trained(cfg.ckpt)
        check_model_overrides(given or {}, saved, cfg.ckpt)
        title = f"{model.config['block']}-{model.layout.depth}"
        if model.config.get("shortcut") == "plain":
            title = f"plain-{model.layout.depth}"
        out = Path(cfg.out) if cfg.out else run_dir / "analysis"
    else:
        if studies != ["paths"]:
            raise ConfigError(f"study={cfg.study!r} needs a trained network: give ckpt=PATH "
                              "(only study=paths works from a config alone).")
        model, data_cfg, run_dir = model_from_config(cfg), {}, None
        title = f"{cfg.block}-{model.layout.depth}"
        out = Path(cfg.out) if cfg.out else Path("analysis") / f"{cfg.block}-d{model.layout.depth}"
    check_writable("out", out)  # before any work: hours of analysis are not lost to an unwritable folder
    model = model.to(device).eval()
    data = eval_data(data_cfg, cfg, device) if any(s != "paths" for s in studies) else None
    tables, summary = {}, {}
    skipped = {}
    for s in studies:
        started = time.time()
        try:
            results = run_study(s, model, data, cfg)
        except ConfigError as err:
            if cfg.study != "all":
                raise
            skipped[s] = str(err)  # study=all goes on with what applies to this network
            continue
        for name, records in results.items():
            tables[name] = records
            summary[name] = {"seconds": round(time.time() - started, 2), "rows": len(records)}
    out.mkdir(parents=True, exist_ok=True)
    for name, records in tables.items():
        A.write_table(records, out, name)
        PLOTS[name](records, out / f"{name}.png", title)
    _log_wandb(cfg, tables, out, run_dir, title)
    print(f"horesnet.analyze: {title}: " + ", ".join(f"{k} ({v['rows']} rows, {v['seconds']}s)"
                                                     for k, v in summary.items()))
    for s, why in skipped.items():
        print(f"  skipped {s}: {why}")
    print(f"  wrote {out}/<study>.csv, .json, .png")
    return out


def _log_wandb(cfg, tables, out: Path, run_dir, title: str) -> None:
    if cfg.wandb == "disabled":
        return
    import wandb

    from .training.loggers import init_run, wandb_mode

    mode = wandb_mode(cfg.wandb)
    if mode == "disabled":
        return
    run = init_run(project="horesnet", name=f"analysis-{title}", job_type="analysis", dir=str(out), mode=mode,
                   group=run_dir.name if run_dir else None, reinit="create_new",
                   config=OmegaConf.to_container(cfg, resolve=True))
    for name, records in tables.items():
        cols = list(dict.fromkeys(k for r in records for k in r))
        run.log({f"{name}/table": wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in records]),
                 f"{name}/plot": wandb.Image(str(out / f"{name}.png"))})
    run.finish()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg = compose("analyze", argv)
        analyze(cfg, _given_model_keys(argv, cfg))
    except ConfigError as err:
        print(f"horesnet.analyze: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
