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


def _model_key(name: str) -> tuple[str, str]:
    from ..models.config import model_options

    option = model_options()[name]
    return _row(name, option, option.default)


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


# fit's keys by group: (title, key prefix, config group whose choice the title line shows)
FIT_GROUPS = (("Model (python -m horesnet.info shows the network)", "", None),
              ("Data", "data.", "data"),
              ("Optimiser", "optim.", "optim"),
              ("Trainer (pytorch_lightning.Trainer; other Trainer keys pass through)", "trainer.", "trainer"),
              ("Logging", "logger.", "logger"),
              ("Divergence (docs/reliability.md)", "divergence.", None),
              ("Run", "", "experiment"))


# the keys of a command line that choose defaults (``fit data=shakespeare --help`` shows that dataset's)
CHOOSERS = ("plugins", "data", "optim", "trainer", "logger", "experiment")


def _fit_defaults(argv: list[str]) -> dict:
    """Every key's default, from the composed config (the YAML files and the registered datasets), for the config
    groups and plugins chosen on the command line (``data=shakespeare``: that dataset's defaults)."""
    from omegaconf import OmegaConf

    from ..errors import ConfigError
    from .compose import compose
    from .schema import flatten, schema_for

    try:
        cfg = compose("fit", [a for a in argv if a.partition("=")[0] in CHOOSERS])
    except ConfigError:
        return {}
    return flatten(OmegaConf.to_container(cfg, resolve=True), schema=schema_for("fit"))


def _dataset_defaults_rows() -> list[tuple[str, str]]:
    """One row per dataset whose choice changes keys outside its data node (``register_dataset(...,
    fit_defaults=)``): every default ``data=<name>`` applies to the keys a command line does not set."""
    from ..data.registry import DATASETS

    rows = []
    for name in DATASETS.names():
        ds = DATASETS.get(name)
        if ds.fit_defaults:
            shown = " ".join(f"{k}={_yaml(v)}" for k, v in ds.run_defaults().items())
            rows.append((f"data={name}", f"also sets, for keys not given: {shown}"))
    return rows


def _given(argv, key: str) -> str | None:
    values = [a.partition("=")[2] for a in argv if a.partition("=")[0] == key]
    return values[-1] if values else None


def _chosen_by_data(argv) -> dict:
    """The config groups the dataset given on the command line chooses (its ``fit_defaults``)."""
    from ..data.registry import DATASETS, FIT_GROUPS

    name = _given(argv, "data")
    if name is None or name not in DATASETS.names():
        return {}
    return {k: v for k, v in DATASETS.get(name).fit_defaults.items() if k in FIT_GROUPS}


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
    from ..models.config import model_options
    from .compose import _config_groups
    from .schema import options_for

    options, defaults, groups = options_for("fit"), _fit_defaults(list(argv)), _config_groups()
    chosen = _group_defaults("fit")
    model = model_options()
    sections = []
    for title, prefix, group in FIT_GROUPS:
        if title.startswith("Model"):
            keys = [k for k in options if k in model]
        elif prefix:
            keys = [k for k in options if k.startswith(prefix)]
        else:
            keys = [k for k in options if k not in model and "." not in k]
        rows = []
        if group:
            given = [a.partition("=")[2] for a in argv if a.partition("=")[0] == group]
            by_data = _chosen_by_data(argv).get(group)
            now = (f"{given[-1]} (given; default {_yaml(chosen.get(group))})" if given else
                   f"{by_data} (the default of data={_given(argv, 'data')}; else {_yaml(chosen.get(group))})"
                   if by_data else f"default {_yaml(chosen.get(group))}")
            rows.append((f"{group}=", f"config group; {now}. Valid: {', '.join(groups.get(group, []))}"))
        if group == "data":
            rows += _dataset_defaults_rows()
        rows += [_row(k, options[k], defaults.get(k, options[k].default)) for k in keys]
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


def analyze_help(argv: list[str] = ()) -> str:
    from omegaconf import OmegaConf

    from ..analysis.registry import ANALYZE_COMMAND, STUDIES
    from ..errors import ConfigError
    from .compose import compose

    try:
        defaults = OmegaConf.to_container(compose("analyze", [a for a in argv if a.startswith("plugins=")]))
    except ConfigError:
        defaults = {}
    options = {}
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
    print(fit_help(argv) if command == "fit" else analyze_help(argv) if command == "analyze" else TEXTS[command]())
    return 0
