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
from ..models.config import model_specs
from ..spec import BOOL, COUNT, FREE, NON_NEGATIVE, OPT_POSITIVE_INT, POSITIVE, POSITIVE_INT, TEXT, Spec, extensions

__all__ = ["BOOL", "COUNT", "FREE", "NON_NEGATIVE", "OPT_POSITIVE_INT", "POSITIVE", "POSITIVE_INT", "TEXT", "Spec",
           "SCHEMAS", "flatten", "schema_for", "validate", "check_consistency"]


def _datasets():
    from ..data.registry import list_datasets

    return list_datasets()


# What Lightning's Trainer accepts as ``precision`` (tests/test_reliability.py keeps this equal to Lightning's own).
PRECISIONS = ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true", "bf16-mixed",
              "32-true", "64-true", 64, 32, 16, "64", "32", "16", "bf16")



MODEL = model_specs()  # the network's options, from the one model config (horesnet.models.config)

DATA = {
    "data.name": Spec("choice", choices=_datasets, hint=PLUGIN_HINT),
    "data.root": Spec("text", nullable=True),
    "data.download": BOOL,
    "data.verify": BOOL,
    "data.channels": POSITIVE_INT,
    "data.num_classes": Spec("int", low=2),
    "data.val_size": COUNT,
    "data.split_seed": COUNT,
    "data.batch_size": POSITIVE_INT,
    "data.eval_batch_size": POSITIVE_INT,
    "data.augment": BOOL,
    "data.crop_padding": COUNT,
    "data.flip": BOOL,
    "data.limit_train": OPT_POSITIVE_INT,
    "data.limit_val": OPT_POSITIVE_INT,
    "data.limit_test": OPT_POSITIVE_INT,
    "data.num_workers": COUNT,
}  # + each registered dataset's own options (``data.synthetic.*``, a plugin's keys): see schema_for

OPTIM = {
    "optim.name": Spec("choice", choices=("sgd", "adamw")),
    "optim.lr": POSITIVE,
    "optim.momentum": Spec("real", low=0, high=1, open_high=True),
    "optim.nesterov": BOOL,
    "optim.weight_decay": NON_NEGATIVE,
    "optim.norm_weight_decay": NON_NEGATIVE,
    "optim.step_weight_decay": NON_NEGATIVE,
    "optim.schedule": Spec("choice", choices=("multistep", "cosine", "onecycle", "constant")),
    "optim.milestones": Spec("reals", low=0, high=1, open_low=True, open_high=True),
    "optim.gamma": POSITIVE,
    "optim.warmup_steps": COUNT,
    "optim.warmup_lr": POSITIVE,
    "optim.pct_start": Spec("real", low=0, high=1, open_low=True, open_high=True),
}

# Lightning validates the trainer keys it owns; these are the ones a run's meaning depends on.
TRAINER = {
    "trainer.accelerator": Spec("choice", choices=("auto", "cpu", "gpu", "cuda", "mps", "tpu")),
    "trainer.precision": Spec("choice", choices=PRECISIONS),
    "trainer.max_epochs": POSITIVE_INT,
    "trainer.log_every_n_steps": POSITIVE_INT,
    "trainer.enable_progress_bar": BOOL,
    "trainer.num_sanity_val_steps": COUNT,
    "trainer.num_nodes": POSITIVE_INT,
    "trainer.strategy": TEXT,
    "trainer.channels_last": BOOL,
    "trainer.benchmark": Spec("bool", nullable=True),
    "trainer.checkpoint_every_n_steps": Spec(
        "int", low=1, nullable=True,
        hint="null (the default) writes checkpoints/last.ckpt at every epoch's end and when the run is interrupted; "
             "N also writes it every N training steps."),
}

FIT = {
    **MODEL, **DATA, **OPTIM, **TRAINER,
    "seed": Spec("int", low=0, high=2**32 - 1, hint="That is the range numpy and torch accept as a seed."),
    "channels_last": BOOL,
    "compile": BOOL,
    "compile_mode": Spec("choice", choices=COMPILE_MODES),
    "grad_checkpointing": BOOL,
    "grad_checkpointing_stages": Spec("ints", low=1, nullable=True),
    "resume": Spec("text", nullable=True),
    "stop_after_epoch": OPT_POSITIVE_INT,
    "weights": Spec("text", nullable=True),
    "scale_controls": BOOL,
    "name": TEXT,
    "paper": FREE,
    "logger.csv": BOOL,
    "logger.wandb": Spec("section", nullable=True),
    "logger.wandb.mode": Spec("choice", choices=("auto", "online", "offline", "disabled")),
    "logger.wandb.project": TEXT,
    "logger.wandb.entity": Spec("text", nullable=True),
    "logger.wandb.group": Spec("text", nullable=True),
    "logger.wandb.name": Spec("text", nullable=True),
    "logger.wandb.tags": Spec("texts"),
    "logger.wandb.log_model": BOOL,
    "logger.wandb.timeout": Spec("real", low=0, high=300, open_low=True),
    "divergence.check_every": POSITIVE_INT,
    "divergence.max_loss": POSITIVE,
    "divergence.max_abs": POSITIVE,
    "plugins": Spec("texts"),
}

ANALYZE = {**MODEL, **ANALYZE_COMMAND}

INFO = {
    **MODEL,
    "list": Spec("choice", choices=("schemes", "blocks", "units", "placements", "studies"), nullable=True),
    "image_size": Spec("int", low=8, high=4096, nullable=True,
                       hint="(An image of that side is pushed through the network to count its multiply-adds.)"),
    "plugins": Spec("texts"),
}

SCHEMAS = {"fit": FIT, "analyze": ANALYZE, "info": INFO}


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


def schema_for(config_name: str) -> dict[str, Spec]:
    """Every key of ``config_name`` with its spec: ``SCHEMAS[config_name]`` and the keys registrations add (a
    registered dataset's or study's own options, :func:`horesnet.spec.extend`)."""
    return {**SCHEMAS[config_name], **extensions(config_name)}


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
