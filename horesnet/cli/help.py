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


def _row(key: str, option, default) -> tuple[str, str]:
    """One key's line: its help, its default and what is valid (from its :class:`~horesnet.spec.Option`)."""
    from ..spec import IN_CONFIG

    spec = option.spec
    valid = ", ".join(map(str, spec.valid_choices())) if spec.kind == "choice" else spec.describe()
    text = option.help or key
    if default is not IN_CONFIG:
        text += f"; default {_yaml(default)}"
    return f"{key}=", f"{text}. Valid: {valid}"


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


def _defaults(command: str, argv: list[str], choosers: tuple[str, ...]) -> dict:
    """Every key's default (``{"a.b": value}``) from the config of ``command`` composed with the keys of ``argv``
    that choose defaults (``fit data=shakespeare --help`` shows that dataset's; a plugin's keys); {} when they do
    not compose."""
    from omegaconf import OmegaConf

    from ..errors import ConfigError
    from .compose import compose
    from .schema import flatten, schema_for

    try:
        cfg = compose(command, [a for a in argv if a.partition("=")[0] in choosers])
    except ConfigError:
        return {}
    return flatten(OmegaConf.to_container(cfg, resolve=True), schema=schema_for(command))


# fit's keys by section: (title, which keys: "model" the model keys, a prefix the keys under it, "" the other
# undotted keys; the config group whose choice the section's first line shows)
FIT_GROUPS = (("Model (python -m horesnet.info shows the network)", "model", None),
              ("Data", "data.", "data"),
              ("Optimiser", "optim.", "optim"),
              ("Trainer (pytorch_lightning.Trainer; other Trainer keys pass through)", "trainer.", "trainer"),
              ("Logging", "logger.", "logger"),
              ("Divergence (docs/reliability.md)", "divergence.", None),
              ("Run", "", "experiment"))


# the keys of a command line that choose defaults (``fit data=shakespeare --help`` shows that dataset's)
CHOOSERS = ("plugins", "data", "optim", "trainer", "logger", "experiment")


def _section(key: str, model) -> str:
    """Which keys of FIT_GROUPS ``key`` is among."""
    return "model" if key in model else key.split(".")[0] + "." if "." in key else ""


def _given(argv, key: str) -> str | None:
    values = [a.partition("=")[2] for a in argv if a.partition("=")[0] == key]
    return values[-1] if values else None


def _group_row(argv, group: str, default: str, valid: list[str]) -> tuple[str, str]:
    """A config group's line: its choice (given, chosen by the dataset given: its ``fit_defaults``, or the
    default) and its options."""
    from ..data.registry import DATASETS
    from ..data.registry import FIT_GROUPS as DATA_CHOOSES

    given, data = _given(argv, group), _given(argv, "data")
    by_data = (DATASETS.get(data).fit_defaults.get(group) if data in DATASETS.names() and group in DATA_CHOOSES
               else None)
    if given is not None:
        now = f"{given} (given; default {default})"
    elif by_data:
        now = f"{by_data} (the default of data={data}; else {default})"
    else:
        now = f"default {default}"
    return f"{group}=", f"config group; {now}. Valid: {', '.join(valid)}"


def _group_defaults(config_name: str) -> dict:
    """The option each config group takes by default: the ``defaults`` list of ``configs/<config_name>.yaml``."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    listed = OmegaConf.load(files("horesnet.configs").joinpath(f"{config_name}.yaml"))["defaults"]
    pairs = [next(iter(d.items())) for d in OmegaConf.to_container(listed) if isinstance(d, dict)]
    return {key.removeprefix("optional ").strip(): value for key, value in pairs if not key.startswith("override")}


def fit_help(argv: list[str] = ()) -> str:
    """Every key of ``fit`` (its schema, :mod:`horesnet.cli.schema`), grouped, with its help, default and valid
    values; nothing typed twice."""
    from ..data.registry import DATASETS
    from ..models.config import model_options
    from .compose import _config_groups
    from .schema import options_for

    options, defaults, groups = options_for("fit"), _defaults("fit", list(argv), CHOOSERS), _config_groups()
    chosen, model = _group_defaults("fit"), model_options()
    sections = []
    for title, which, group in FIT_GROUPS:
        rows = [_group_row(argv, group, _yaml(chosen.get(group)), groups.get(group, []))] if group else []
        if group == "data":  # the datasets whose choice changes keys outside their data node (fit_defaults=)
            rows += [(f"data={name}", "also sets, for keys not given: "
                      + " ".join(f"{k}={_yaml(v)}" for k, v in DATASETS.get(name).run_defaults().items()))
                     for name in DATASETS.names() if DATASETS.get(name).fit_defaults]
        rows += [_row(k, option, defaults.get(k, option.default)) for k, option in options.items()
                 if _section(k, model) == which]
        if title == "Run":
            rows += [("hydra.run.dir=", "the run folder (default outputs/<data>/<block>-d<depth>/<time>)"),
                     ("hydra.sweep.dir=", "with -m: the sweep folder (default multirun/<time>)")]
        sections += [f"{title}:", _rows(rows), ""]
    return "\n".join([
        "python -m horesnet.fit [-m] key=value ...",
        "",
        "Train one residual-network variant (or, with -m, a sweep over comma-separated values) with the He et al.",
        "2015 recipe. Each run writes one folder: fit.log (the console log), metrics.csv, checkpoints/last.ckpt and",
        "best.ckpt, summary.json, .hydra/ and wandb/. A bad value is refused before anything is written (exit 2).",
        "Every key follows (from the schema, horesnet/cli/schema.py).",
        "",
        *sections,
        "Interruptions: Ctrl-C/SIGINT, SIGTERM and SIGUSR1/SIGUSR2 (SLURM's --signal) save a resumable checkpoint",
        "mid-epoch and print the command that continues the run (exit status 130, 143, 138, 140). Checkpoints are",
        "written at every epoch's end; trainer.checkpoint_every_n_steps=N (default null) also writes one every N",
        "training steps. resume=auto continues bit for bit, mid-epoch too.",
        "",
        "Examples:",
        "  python -m horesnet.fit block=rk4 depth=56 data=fashion_mnist trainer.max_epochs=3",
        "  python -m horesnet.fit data=shakespeare       # a small Transformer LM, a few CPU minutes",
        "  python -m horesnet.fit data=shakespeare --help  # the defaults with data=shakespeare",
        "  python -m horesnet.fit -m block=euler,midpoint,rk4 seed=0,1,2 hydra.sweep.dir=multirun/ho56",
        "  python -m horesnet.compare multirun/ho56",
        "  python -m horesnet.analyze ckpt=multirun/ho56/<member folder> study=lesion",
        "",
        "Hydra's own options: --hydra-help, --cfg job (print the composed config).",
    ])


def info_help(argv: list[str] = ()) -> str:
    from ..models import list_blocks
    from ..models.config import model_options
    from ..nn import list_placements, list_units

    model = model_options()
    rows = [_row(k, model[k], model[k].default)
            for k in ("block", "depth", "unit", "placement", "shortcut", "width", "stages", "inner", "arch")]
    rows += [("num_classes=", "classes of the head; default 10"),
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
        f"Blocks: {', '.join(list_blocks())}",
        f"Units: {', '.join(list_units())}",
        f"Placements: {', '.join(list_placements())}",
        "",
        "Examples:",
        "  python -m horesnet.info block=rk4 depth=56",
        "  python -m horesnet.info arch=imagenet depth=50 shortcut=B num_classes=1000",
        "  python -m horesnet.info list=schemes",
    ])


def analyze_help(argv: list[str] = ()) -> str:
    from ..analysis.registry import ANALYZE_COMMAND, STUDIES

    defaults, options = _defaults("analyze", list(argv), ("plugins",)), {}
    for study in STUDIES.values():
        for key, opt in study.options.items():
            options.setdefault(key, (opt, []))[1].append(study.name)
    rows = [_row(key, option, defaults.get(key, option.default)) for key, option in ANALYZE_COMMAND.items()]
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
        "\n".join(f"  {s.name.ljust(14)}{s.description}" for s in STUDIES.values()),
        "",
        "Keys:",
        _rows(rows),
        "",
        "Examples:",
        "  python -m horesnet.analyze ckpt=outputs/fashion_mnist/rk4-d56/<time> study=all",
        "  python -m horesnet.analyze ckpt=multirun/ho56/block=rk4,seed=0 study=[lesion,lesion_random]",
        "  python -m horesnet.analyze study=paths block=rk4 depth=56        # no checkpoint needed",
    ])


def compare_help(argv: list[str] = ()) -> str:
    from .schema import OPTIONS

    rows = [("PATH ...", "run folders or sweep folders (every summary.json below them)")]
    rows += [_row(key, option, option.default) for key, option in OPTIONS["compare"].items()]
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
    """Load the plugins named on the command line (a ConfigError when one cannot be loaded), print the help of
    ``command``; exit status 0."""
    from ..plugins import load_plugins, plugins_from_argv

    load_plugins(plugins_from_argv(argv))
    print(TEXTS[command](argv))
    return 0
