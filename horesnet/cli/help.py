"""``--help`` / ``-h`` of every entry point (``fit``, ``info``, ``analyze``, ``compare``): what the command does, its
most used keys with one line each and their valid values, and examples. The valid values are read from the
registries (schemes and blocks, units, placements, datasets, studies) when the help is printed, so a plugin loaded
with ``plugins=[...]`` on the same command line shows up too (docs/extending.md)."""

from __future__ import annotations

import textwrap

HELP_FLAGS = ("--help", "-h")


def wants_help(argv: list[str]) -> bool:
    """Whether the command line asks for this help (Hydra's own ``--hydra-help`` is left to Hydra)."""
    return any(a in HELP_FLAGS for a in argv)


def _model_key(name: str) -> tuple[str, str]:
    from dataclasses import fields

    from ..models.config import ModelConfig

    f = next(f for f in fields(ModelConfig) if f.name == name)
    spec = f.metadata["spec"]
    values = ", ".join(map(str, spec.valid_choices())) if spec.kind == "choice" else spec.describe()
    return f"{name}=", f"{f.metadata['help']}; default {_yaml(f.default)}. Valid: {values}"


def _yaml(value) -> str:
    """A default as it is written on the command line (true, false, null, [1, 2])."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)


def _rows(rows: list[tuple[str, str]], width: int = 100) -> str:
    key_w = max(len(k) for k, _ in rows) + 2
    out = []
    for key, text in rows:
        lines = textwrap.wrap(text, width - key_w - 2) or [""]
        out.append(f"  {key.ljust(key_w)}{lines[0]}")
        out += [" " * (key_w + 2) + line for line in lines[1:]]
    return "\n".join(out)


def _registries() -> dict[str, str]:
    from .. import data  # noqa: F401 -- registers the built-in datasets
    from ..data.registry import list_datasets
    from ..models import list_blocks
    from ..nn import list_placements, list_units

    return {"blocks": ", ".join(list_blocks()), "units": ", ".join(list_units()),
            "placements": ", ".join(list_placements()), "datasets": ", ".join(list_datasets())}


def _studies() -> str:
    from ..analysis import get_study, list_studies

    return "\n".join(f"  {n.ljust(14)}{get_study(n).description}" for n in list_studies())


def _model_rows() -> list[tuple[str, str]]:
    return [_model_key(k) for k in ("arch", "block", "depth", "unit", "placement", "shortcut", "width", "stages",
                                    "entry", "step", "learn_step", "tied", "inner", "norm", "zero_init_last",
                                    "drop_path_rate", "coefficient", "learn_coefficients", "reversible", "layout",
                                    "d_model", "heads", "context")]


def fit_help() -> str:
    r = _registries()
    rows = _model_rows() + [
        ("seed=", "random seed of the run; default 0"),
        ("data=", f"dataset; default cifar10. Valid: {r['datasets']}"),
        ("data.limit_train=N", "train on the first N images of the training split (default: all)"),
        ("data.limit_val=N", "validate on the first N images of the validation split (default: all)"),
        ("data.limit_test=N", "test on the first N images of the test split (default: all)"),
        ("data.batch_size=", "training batch size; default 128"),
        ("optim=", "he (default: SGD 0.9, lr 0.1 /10 at 50% and 75%), cosine, onecycle; optim.lr=..."),
        ("trainer.max_epochs=", "epochs; default 182 (He et al. 2015)"),
        ("trainer.precision=", "32-true (default), bf16-mixed, 16-mixed, 64-true"),
        ("trainer=", "cpu (default), gpu, ddp"),
        ("channels_last=true", "channels-last memory format (faster with bf16 on CPUs with bf16 instructions, GPUs)"),
        ("compile=true", "torch.compile the network (compile_mode=default|reduce-overhead|max-autotune)"),
        ("grad_checkpointing=true", "recompute activations in backward (less memory, ~1.3x time; "
                                    "grad_checkpointing_stages=[1,2] for some stages)"),
        ("weights=PATH", "start from a torchvision ResNet's weights (any scheme of the same depth; "
                         "docs/torchvision_weights.md)"),
        ("logger=", "wandb (default; offline without an API key), csv"),
        ("resume=", "auto: continue the newest unfinished run of this name | PATH: a run folder or checkpoint"),
        ("stop_after_epoch=k", "stop cleanly after epoch k (resumable)"),
        ("scale_controls=true", "with -m: also train the matched Euler control of every scale-confounded member"),
        ("experiment=", "a paper recipe, e.g. he2015_resnet56, ho2021_resnet58 (README)"),
        ("hydra.run.dir=", "the run folder (default outputs/<data>/<block>-d<depth>/<time>)"),
        ("hydra.sweep.dir=", "with -m: the sweep folder (default multirun/<time>)"),
        ("plugins=[f.py]", "load your own units, datasets, studies or schemes (docs/extending.md)"),
    ]
    return "\n".join([
        "python -m horesnet.fit [-m] key=value ...",
        "",
        "Train one residual-network variant (or, with -m, a sweep over comma-separated values) with the He et al.",
        "2015 recipe. Each run writes one folder: fit.log (the console log), metrics.csv, checkpoints/last.ckpt and",
        "best.ckpt, summary.json, .hydra/ and wandb/. A bad value is refused before anything is written (exit 2).",
        "",
        "Most used keys:",
        _rows(rows),
        "",
        f"Blocks (schemes; python -m horesnet.info list=schemes): {r['blocks']}",
        f"Units: {r['units']}",
        f"Placements: {r['placements']}",
        "Shortcuts: A (zero-pad), B (projection where the shape changes), C (projection everywhere), plain (none)",
        f"Datasets: {r['datasets']}",
        "",
        "Interruptions: Ctrl-C/SIGINT, SIGTERM and SIGUSR1/SIGUSR2 (SLURM's --signal) save a resumable checkpoint",
        "mid-epoch and print the command that continues the run (exit status 130, 143, 138, 140). Checkpoints are",
        "written at every epoch's end; trainer.checkpoint_every_n_steps=N (default null) also writes one every N",
        "training steps. resume=auto continues bit for bit, mid-epoch too.",
        "",
        "Examples:",
        "  python -m horesnet.fit block=rk4 depth=56 data=fashion_mnist trainer.max_epochs=3",
        "  python -m horesnet.fit -m block=euler,midpoint,rk4 seed=0,1,2 hydra.sweep.dir=multirun/ho56",
        "  python -m horesnet.compare multirun/ho56",
        "  python -m horesnet.analyze ckpt=multirun/ho56/<member folder> study=lesion",
        "",
        "Hydra's own options: --hydra-help, --cfg job (print the composed config).",
    ])


def info_help() -> str:
    r = _registries()
    rows = [_model_key(k) for k in ("block", "depth", "unit", "placement", "shortcut", "width", "stages", "inner")]
    rows += [_model_key("arch"), ("num_classes=", "classes of the head; default 10"),
             ("image_size=", "input side for multiply-adds (default 32 cifar, 224 imagenet)"),
             ("list=", "print a registry instead of a network: schemes, blocks, units, placements, studies")]
    return "\n".join([
        "python -m horesnet.info key=value ...",
        "",
        "Describe a network without training it: its layout (blocks per stage, entry and leftover units), conv",
        "layers, parameters, multiply-adds and residual scale; or list a registry.",
        "",
        "Keys (the same model keys as fit):",
        _rows(rows),
        "",
        f"Blocks: {r['blocks']}",
        f"Units: {r['units']}",
        f"Placements: {r['placements']}",
        "",
        "Examples:",
        "  python -m horesnet.info block=rk4 depth=56",
        "  python -m horesnet.info arch=imagenet depth=50 shortcut=B num_classes=1000",
        "  python -m horesnet.info list=schemes",
    ])


def analyze_help() -> str:
    from ..analysis.registry import STUDIES

    options = {}
    for study in STUDIES.values():
        for key, opt in study.options.items():
            options.setdefault(key, (opt, []))[1].append(study.name)
    rows = [("ckpt=", "a checkpoint or run folder of horesnet.fit (a sweep member folder as the shell gives it: "
                      "no quoting needed)"),
            ("study=", "one study, a list study=[lesion,paths] or study=lesion,paths, or all (default)"),
            ("split=", "test (default) | val"),
            ("limit=", "images evaluated; default 2000 (null: the whole split)"),
            ("out=", "output folder; default <run folder>/analysis"),
            ("fresh=true", "redo studies already written to the output folder (default: keep them, run the rest)"),
            ("device=", "auto (default) | cpu | cuda"),
            ("wandb=", "auto (default; offline without an API key) | online | offline | disabled")]
    rows += [(f"{key}=", f"{opt.help}; default {_yaml(opt.default)} (study {', '.join(names)})")
             for key, (opt, names) in options.items()]
    return "\n".join([
        "python -m horesnet.analyze ckpt=PATH study=NAME key=value ...",
        "",
        "Take a trained network apart. Each study writes <study>.csv, .json and .png into the output folder as soon",
        "as it is done (an interrupted study=all keeps the finished ones; the next call runs the rest); a study that",
        "cannot apply to the network is skipped at once with its reason.",
        "",
        "Studies:",
        _studies(),
        "",
        "Keys:",
        _rows(rows),
        "",
        "Examples:",
        "  python -m horesnet.analyze ckpt=outputs/fashion_mnist/rk4-d56/<time> study=all",
        "  python -m horesnet.analyze ckpt=multirun/ho56/block=rk4,seed=0 study=[lesion,lesion_random]",
        "  python -m horesnet.analyze study=paths block=rk4 depth=56        # no checkpoint needed",
    ])


def compare_help() -> str:
    rows = [("PATH ...", "run folders or sweep folders (every summary.json below them)"),
            ("out=DIR", "output folder; default <first PATH>/comparison"),
            ("allow_unfair=true", "write the table even across depths, recipes, data or epochs (says NOT FAIR)"),
            ("wandb=true", "also log the table to W&B")]
    return "\n".join([
        "python -m horesnet.compare PATH ... [key=value ...]",
        "",
        "Group finished runs into variants (every model option and recipe key equal; only the seed differs), and",
        "write comparison.md, .csv, .json and .png: test accuracy mean +/- std over distinct seeds, residual scale,",
        "parameters, confound flags with the matched Euler control, and every pairwise difference with its 95%",
        "confidence interval and Welch p-value (docs/design.md, Statistics).",
        "",
        "Keys:",
        _rows(rows),
        "",
        "Example:",
        "  python -m horesnet.fit -m block=euler,rk4 seed=0,1,2 hydra.sweep.dir=multirun/ho56",
        "  python -m horesnet.compare multirun/ho56",
    ])


TEXTS = {"fit": fit_help, "info": info_help, "analyze": analyze_help, "compare": compare_help}


def print_help(command: str, argv: list[str]) -> int:
    """Load the plugins named on the command line, print the help of ``command``; exit status 0 (2 for a plugin
    that cannot be loaded)."""
    import sys

    from ..errors import ConfigError
    from ..plugins import load_plugins, plugins_from_argv

    try:
        load_plugins(plugins_from_argv(argv))
    except ConfigError as err:
        print(f"horesnet.{command}: error: {err}", file=sys.stderr)
        return 2
    print(TEXTS[command]())
    return 0
