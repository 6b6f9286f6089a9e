"""Hydra composition shared by the command-line tools: ``compose`` checks every override against the schema."""

from __future__ import annotations

import re

from omegaconf import DictConfig, OmegaConf

from ..data.registry import CONFIG_GROUP as DATA_GROUP  # importing the data package registers the built-ins
from ..errors import PLUGIN_HINT, ConfigError, check_choice, unknown_option
from ..models.config import store_model_node
from ..plugins import load_plugins, plugins_from_argv
from .schema import schema_for, validate

store_model_node()  # the Hydra ``model`` config, made from ModelConfig


def compose(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose ``horesnet/configs/<config_name>.yaml`` with ``key=value`` overrides (Hydra compose API) and check
    every value against its schema (``horesnet.cli.schema``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if config_name == "analyze":  # the registered studies hold the defaults of their options (analyze.yaml)
        from .. import analysis  # noqa: F401
    load_plugins(plugins_from_argv(overrides))  # what they register is a valid choice below
    try:
        with initialize_config_module(config_module="horesnet.configs", version_base="1.3"):
            groups = _config_groups()
            known = set(hydra_compose(config_name=config_name)) | set(groups)
            for item in overrides:
                key, _, value = item.partition("=")
                key = key.lstrip("+~")
                if "=" in item and key[:1].isalpha() and key.split(".")[0] not in known:
                    raise unknown_option(key, known)
                if key in groups and value not in ("", "null"):   # an optional group ignores a typo silently
                    for choice in value.split(","):
                        check_choice(key, choice, groups[key], PLUGIN_HINT if key == "data" else "")
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
            validate(OmegaConf.to_container(cfg, resolve=True), config_name)
            return cfg
    except (HydraException, OmegaConfBaseException) as err:
        text = str(err).split("Config search path")[0]
        text = " ".join(text.replace("\t", " ").split())
        missing = re.match(r"Could not override '([\w.]+)'\. To append to your config use \+", text)
        if missing and "." in missing[1]:  # a mistyped nested key (data.limit_tset): name the valid ones
            parent = missing[1].rsplit(".", 1)[0]
            valid = [k for k in schema_for(config_name) if k.startswith(parent + ".")]
            if valid:
                raise unknown_option(missing[1], valid, f" of {parent}") from None
        raise ConfigError(f"bad command-line override: {text}") from None


def _config_groups() -> dict[str, list[str]]:
    """Each config group (``data``, ``optim``, ``experiment``, ...) with its options -- YAML files and entries of
    Hydra's ConfigStore (registered datasets) -- : valid override keys too."""
    from importlib.resources import files

    from hydra.core.config_store import ConfigStore

    groups = {g.name: {p.name[:-5] for p in g.iterdir() if p.name.endswith(".yaml")}
              for g in files("horesnet.configs").iterdir() if g.is_dir() and not g.name.startswith("_")}
    groups.setdefault(DATA_GROUP, set())  # datasets live in the ConfigStore only (horesnet/data/registry.py)
    store = ConfigStore.instance()
    for group, names in groups.items():
        if group in store.list(""):
            names.update(n[:-5] for n in store.list(group) if n.endswith(".yaml"))
    return {group: sorted(names) for group, names in groups.items()}
