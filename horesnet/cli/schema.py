"""The one schema of every command-line key: its type and its range, checked as soon as a command line is composed.

A value is accepted only if it has the declared type (booleans only ``true``/``false``, counts positive integers,
rates finite numbers) and lies in the declared range or list of choices; otherwise a ConfigError names the key,
the bad value and what is valid. Cross-key rules (the model's head against the data, the precision Lightning
accepts) follow in :func:`check_consistency`. See ``docs/reliability.md``.
"""

from __future__ import annotations

from ..analysis.registry import ANALYZE_COMMAND
from ..errors import PLUGIN_HINT, ConfigError, unknown_option
from ..models.compile import COMPILE_MODES
from ..models.config import model_options
from ..spec import (
    BOOL,
    COUNT,
    FREE,
    IN_CONFIG,
    NON_NEGATIVE,
    OPT_POSITIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    TEXT,
    Option,
    Spec,
    extension_options,
    specs_of,
)

__all__ = ["BOOL", "COUNT", "FREE", "NON_NEGATIVE", "OPT_POSITIVE_INT", "POSITIVE", "POSITIVE_INT", "TEXT", "Spec",
           "OPTIONS", "Option", "flatten", "options_for", "schema_for", "validate", "check_consistency"]


def _list_choices():
    """``info list=``: every registry's plural name (schemes, units, ..., and a plugin's own kinds) and ``blocks``."""
    from .. import analysis, data, models  # noqa: F401 -- their registries exist once imported
    from ..registry import registries

    return sorted({r.plural for r in registries()} | {"blocks"})


def _datasets():
    from ..data.registry import list_datasets

    return list_datasets()


# What Lightning's Trainer accepts as ``precision`` (tests/test_reliability.py keeps this equal to Lightning's own).
PRECISIONS = ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true", "bf16-mixed",
              "32-true", "64-true", 64, 32, 16, "64", "32", "16", "bf16")


def o(spec: Spec, help: str) -> Option:  # noqa: A002 -- the option's help line
    """A command-line key whose default lives in the YAML configs (``horesnet/configs``)."""
    return Option(IN_CONFIG, spec, help)


PLUGINS = o(Spec("texts"), "modules or .py files that register units, datasets, studies or schemes (docs/extending.md)")
MODEL = model_options()  # the network's options, from the one model config (horesnet.models.config)

DATA = {
    "data.name": o(Spec("choice", choices=_datasets, hint=PLUGIN_HINT), "dataset (data=NAME selects its config group)"),
    "data.root": o(Spec("text", nullable=True), "folder of the dataset's files (null: the dataset's default place)"),
    "data.download": o(BOOL, "fetch missing files (checksummed) instead of refusing"),
    "data.verify": o(BOOL, "check the files' checksums before training"),
    "data.channels": o(POSITIVE_INT, "image channels (follows the dataset)"),
    "data.num_classes": o(Spec("int", low=2), "classes (follows the dataset)"),
    "data.val_size": o(COUNT, "images held out of the training split for validation"),
    "data.split_seed": o(COUNT, "seed of the train/validation split"),
    "data.batch_size": o(POSITIVE_INT, "training batch size"),
    "data.eval_batch_size": o(POSITIVE_INT, "batch size of validation and test"),
    "data.augment": o(BOOL, "pad-and-crop (+ flip) augmentation of training images"),
    "data.crop_padding": o(COUNT, "pixels of padding before the random crop"),
    "data.flip": o(BOOL, "random horizontal flips"),
    "data.limit_train": o(OPT_POSITIVE_INT,
                          "train on the first N images (sequences) of the training split (null: all)"),
    "data.limit_val": o(OPT_POSITIVE_INT, "validate on the first N of the validation split (null: all)"),
    "data.limit_test": o(OPT_POSITIVE_INT, "test on the first N of the test split (null: all)"),
    "data.num_workers": o(COUNT, "data-loader worker processes"),
}  # + each registered dataset's own options (``data.synthetic.*``, a plugin's keys): see schema_for

OPTIM = {
    "optim.name": o(Spec("choice", choices=("sgd", "adamw")),
                    "optimiser: sgd | adamw (optim=he, cosine, onecycle, transformer pick a whole recipe)"),
    "optim.lr": o(POSITIVE, "peak learning rate"),
    "optim.momentum": o(Spec("real", low=0, high=1, open_high=True), "SGD momentum (AdamW: beta1)"),
    "optim.nesterov": o(BOOL, "Nesterov momentum (SGD)"),
    "optim.weight_decay": o(NON_NEGATIVE, "weight decay of weights"),
    "optim.norm_weight_decay": o(NON_NEGATIVE, "weight decay of normalisation parameters and biases"),
    "optim.step_weight_decay": o(NON_NEGATIVE, "weight decay of learned steps and scheme coefficients"),
    "optim.schedule": o(Spec("choice", choices=("multistep", "cosine", "onecycle", "constant")),
                        "learning-rate schedule"),
    "optim.milestones": o(Spec("reals", low=0, high=1, open_low=True, open_high=True),
                          "multistep: fractions of training where the rate drops"),
    "optim.gamma": o(POSITIVE, "multistep: factor of each drop"),
    "optim.warmup_steps": o(COUNT, "linear warm-up steps"),
    "optim.warmup_lr": o(POSITIVE, "learning rate at the start of the warm-up"),
    "optim.pct_start": o(Spec("real", low=0, high=1, open_low=True, open_high=True),
                         "onecycle: fraction of training spent rising"),
}

# Lightning validates the trainer keys it owns; these are the ones a run's meaning depends on.
TRAINER = {
    "trainer.accelerator": o(Spec("choice", choices=("auto", "cpu", "gpu", "cuda", "mps", "tpu")),
                             "device kind (trainer=gpu selects a GPU recipe)"),
    "trainer.precision": o(Spec("choice", choices=PRECISIONS),
                           "32-true, bf16-mixed (fast on CPUs with bf16 instructions), 16-mixed, 64-true"),
    "trainer.max_epochs": o(POSITIVE_INT, "epochs"),
    "trainer.log_every_n_steps": o(POSITIVE_INT, "steps between logged training metrics"),
    "trainer.enable_progress_bar": o(BOOL, "the console progress bar (loss, img/s, ETA)"),
    "trainer.num_sanity_val_steps": o(COUNT, "validation batches run before training"),
    "trainer.num_nodes": o(POSITIVE_INT, "machines (ddp)"),
    "trainer.strategy": o(TEXT, "Lightning strategy (auto, ddp, ...)"),
    "trainer.channels_last": o(BOOL, "default of channels_last for this trainer"),
    "trainer.benchmark": o(Spec("bool", nullable=True), "cuDNN autotuning (null: Lightning's default)"),
    "trainer.checkpoint_every_n_steps": o(Spec(
        "int", low=1, nullable=True,
        hint="null (the default) writes checkpoints/last.ckpt at every epoch's end and when the run is interrupted; "
             "N also writes it every N training steps."),
        "also write a resumable checkpoint every N training steps (null: at epoch ends and interruptions only)"),
}

FIT = {
    **MODEL, **DATA, **OPTIM, **TRAINER,
    "seed": o(Spec("int", low=0, high=2**32 - 1, hint="That is the range numpy and torch accept as a seed."),
              "random seed of the run"),
    "channels_last": o(BOOL, "channels-last memory format (faster with bf16 on CPUs with bf16 instructions, GPUs)"),
    "compile": o(BOOL, "torch.compile the network for training and evaluation (docs/speed.md)"),
    "compile_mode": o(Spec("choice", choices=COMPILE_MODES), "torch.compile mode"),
    "grad_checkpointing": o(BOOL, "recompute activations in backward (less memory, about 1.3x time)"),
    "grad_checkpointing_stages": o(Spec("ints", low=1, nullable=True),
                                   "with grad_checkpointing: the 1-based stages to checkpoint, e.g. [1,2] (null: all)"),
    "resume": o(Spec("text", nullable=True),
                "auto: continue the newest unfinished run of this name | PATH: a run folder or checkpoint"),
    "stop_after_epoch": o(OPT_POSITIVE_INT, "stop cleanly (resumably) after epoch k"),
    "weights": o(Spec("text", nullable=True),
                 "start from a torchvision ResNet's weights, any scheme of its depth (docs/torchvision_weights.md)"),
    "scale_controls": o(BOOL, "with -m: also train the matched Euler control of every scale-confounded member"),
    "name": o(TEXT, "run name (W&B) and output sub-folder"),
    "paper": o(FREE, "a paper recipe's published numbers (set by experiment=...)"),
    "logger.csv": o(BOOL, "also write metrics.csv"),
    "logger.wandb": o(Spec("section", nullable=True), "the W&B logger (logger=csv: none)"),
    "logger.wandb.mode": o(Spec("choice", choices=("auto", "online", "offline", "disabled")),
                           "auto (offline without an API key), online, offline, disabled"),
    "logger.wandb.project": o(TEXT, "W&B project"),
    "logger.wandb.entity": o(Spec("text", nullable=True), "W&B entity (team)"),
    "logger.wandb.group": o(Spec("text", nullable=True), "W&B group"),
    "logger.wandb.name": o(Spec("text", nullable=True), "W&B run name (null: the run name)"),
    "logger.wandb.tags": o(Spec("texts"), "W&B tags"),
    "logger.wandb.log_model": o(BOOL, "upload checkpoints to W&B"),
    "logger.wandb.timeout": o(Spec("real", low=0, high=300, open_low=True), "seconds to wait for W&B to start"),
    "divergence.check_every": o(POSITIVE_INT, "steps between divergence checks"),
    "divergence.max_loss": o(POSITIVE, "a loss above this is divergence"),
    "divergence.max_abs": o(POSITIVE, "a parameter or buffer above this in magnitude is divergence"),
    "plugins": PLUGINS,
}

# the analyze command's own keys are declared with its study registry (their defaults: configs/analyze.yaml)
ANALYZE = {**MODEL, **ANALYZE_COMMAND}

INFO = {
    **MODEL,
    "list": o(Spec("choice", choices=_list_choices, nullable=True),
              "list a registry instead of describing a network"),
    "image_size": o(Spec("int", low=8, high=4096, nullable=True,
                         hint="(An image of that side is pushed through the network to count its multiply-adds.)"),
                    "side of the image pushed through the network to count multiply-adds (null: the family's)"),
    "plugins": PLUGINS,
}

# python -m horesnet.compare's keys (parsed by hand: its paths are positional, its keys have plain defaults)
COMPARE = {
    "out": Option(None, Spec("text", nullable=True), "output folder (default <first PATH>/comparison)"),
    "allow_unfair": Option(False, BOOL, "write the table even across depths, recipes, data or epochs (says NOT FAIR)"),
    "wandb": Option(False, BOOL, "also log the table to W&B"),
    "wandb_project": Option("horesnet", TEXT, "W&B project of that log"),
}

OPTIONS = {"fit": FIT, "analyze": ANALYZE, "info": INFO, "compare": COMPARE}


def flatten(tree: dict, prefix: str = "", schema: dict | None = None) -> dict:
    """``{"a.b": value}`` for every leaf; a key the schema marks ``free`` is kept whole."""
    out = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        spec = (schema or {}).get(dotted)
        if isinstance(value, dict) and value and not (spec is not None and spec.kind == "free"):
            out.update(flatten(value, dotted + ".", schema))
        else:
            out[dotted] = value
    return out


def options_for(command: str) -> dict[str, Option]:
    """Every key of ``command`` as declared (:class:`~horesnet.spec.Option`), with the keys registrations add (a
    registered dataset's or study's own options, :func:`horesnet.spec.extend`)."""
    return {**OPTIONS[command], **extension_options(command)}


def schema_for(config_name: str) -> dict[str, Spec]:
    """Every key of ``config_name`` with its spec: the declared options and the keys registrations add."""
    return specs_of(options_for(config_name))


def validate(config: dict, config_name: str) -> None:
    """Check every key of a composed (resolved, plain-container) config against its schema."""
    schema = schema_for(config_name)
    flat = flatten(config, schema=schema)
    for key, value in flat.items():
        spec = schema.get(key)
        if spec is None:
            if key.startswith("trainer.") or key.startswith("paper."):
                continue  # other Lightning Trainer options: checked by Lightning in the preflight
            parent = key.rsplit(".", 1)[0] if "." in key else None
            siblings = sorted(k for k in schema if parent and k.startswith(parent + "."))
            raise unknown_option(key, siblings or schema, f" of {parent}" if siblings else "")
        spec.check(key, value)
    if config_name == "fit":
        check_consistency(config)


def check_consistency(config: dict) -> None:
    """Rules between keys of a training config: the model's input and head match the data."""
    from ..data.registry import dataset_facts

    data = config.get("data") or {}
    facts = dataset_facts(data)
    for model_key, data_key, actual in (("num_classes", "num_classes", facts.num_classes),
                                        ("in_channels", "channels", facts.channels)):
        if data.get(data_key) != actual:
            raise ConfigError(f"data.{data_key}={data.get(data_key)} but {data['name']} has {actual} "
                              f"{'classes' if data_key == 'num_classes' else 'image channels'}; leave "
                              f"data.{data_key} at {actual}.")
        if config.get(model_key) != actual:
            raise ConfigError(f"{model_key}={config.get(model_key)} does not match the data: {data['name']} has "
                              f"{actual} {'classes' if data_key == 'num_classes' else 'image channels'} "
                              f"(the model's {model_key} follows data.{data_key} by default; leave it unset).")
    if data.get("val_size", 0) >= facts.train_size:
        raise ConfigError(f"data.val_size={data['val_size']} leaves no training images: {data['name']} has "
                          f"{facts.train_size} training images; valid: 0 .. {facts.train_size - 1}.")
