"""The dataset registry: every dataset, built in or a plugin, described in one place (docs/extending_datasets.md).

``register_dataset`` records a :class:`Dataset` -- its reader, facts, file sources, presence check, config defaults,
option specs -- in :data:`DATASETS` (a :class:`horesnet.registry.Registry`), whose change callbacks store its config
node in Hydra's ConfigStore (group ``data``), so ``data=<name>`` composes without a YAML file. The data module, the
availability check, the schema's choices and the consistency rules all read this registry. Kept free of Lightning
and torch: the command line is checked before either is imported.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import ConfigError
from ..registry import Registry
from ..spec import Option, extend, retract
from .sources import DataError, Download, checksum, obtain

CONFIG_GROUP = "data"  # the Hydra config group every registered dataset is an option of
# the Hydra config group of the datasets' ``fit_defaults`` values (package _global_): fit.yaml lists it as
# ``optional dataset_defaults: ${data}`` after its own keys, so a dataset's defaults of other nodes (the model's
# depth, trainer.max_epochs) come after the nodes they change and before experiment= and the command line
DEFAULTS_GROUP = "dataset_defaults"
# fit's config groups a dataset may choose in ``fit_defaults`` (``"optim": "transformer"``): a choice becomes an
# ``override /<group>`` in the dataset's node, which a group given on the command line (``optim=he``) overrides
FIT_GROUPS = ("optim", "trainer", "logger")

# The options every dataset has, in this order, with these defaults (a dataset's ``defaults`` may change them).
# ``channels`` and ``num_classes`` are filled from the dataset's facts.
COMMON_DEFAULTS: dict[str, Any] = {
    "root": None,            # null: $HORESNET_DATA or ~/.cache/horesnet/data
    "download": True,        # fetch missing files when the network is reachable
    "verify": True,          # check the published md5 checksums
    "channels": None,        # image channels (the dataset's)
    "num_classes": None,     # classes (the dataset's)
    "val_size": 5000,        # 45k/5k train/validation split of 50k training images (He et al. 2015)
    "split_seed": 0,         # the same validation images for every run
    "batch_size": 128,
    "eval_batch_size": 500,
    "augment": True,         # pad-4 random crop + horizontal flip, batched on the training device
    "crop_padding": 4,
    "flip": True,
    "limit_train": None,     # train on the first N images of the training split
    "limit_val": None,
    "limit_test": None,
    "num_workers": 0,
}


class DatasetFacts(NamedTuple):
    """What is known before any file is read."""

    channels: int
    num_classes: int
    train_size: int


# (root, download, verify, options) -> (x_train uint8 (N, C, H, W), y_train int64 (N,), x_test, y_test)
Loader = Callable[[Path, bool, bool, dict], tuple]


@dataclass(frozen=True)
class Dataset:
    """One dataset as :func:`register_dataset` stores it; docs/extending_datasets.md explains every field. ``load``
    gets the dataset's own config keys (those of ``defaults`` beyond :data:`COMMON_DEFAULTS`) as ``options``;
    ``present`` None: the dataset needs no files; ``missing`` None: a message naming the files, checksums and URLs
    (:func:`missing_error`). ``defaults`` holds the config node's values beyond the common ones, the defaults of
    ``options`` (each ``data.<key>``, nested: ``data.synthetic.train_size``) among them."""

    name: str
    load: Loader
    facts: DatasetFacts | Callable[[dict], DatasetFacts]
    description: str
    downloads: tuple[Download, ...] = ()
    present: Callable[[Path], bool] | None = None
    missing: Callable[[Path, str], DataError] | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Option] = field(default_factory=dict)
    fit_defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.host for d in self.downloads))

    @property
    def option_keys(self) -> tuple[str, ...]:
        """The dataset's own top-level config keys (passed to ``load`` as ``options``)."""
        return tuple(k for k in self.defaults if k not in COMMON_DEFAULTS and k != "name")

    def config_node(self) -> dict:
        """The composed ``data`` node: the name, the common defaults, the facts, then the dataset's own defaults."""
        node = {"name": self.name, **copy.deepcopy(COMMON_DEFAULTS)}
        if isinstance(self.facts, DatasetFacts):
            node["channels"], node["num_classes"] = self.facts.channels, self.facts.num_classes
        node.update(copy.deepcopy(dict(self.defaults)))
        groups = [{f"override /{k}@_global_.{k}": v} for k, v in self.fit_defaults.items() if k in FIT_GROUPS]
        if groups:  # config group choices: overrides in the defaults list of the data node
            node = {"defaults": [*groups, "_self_"], **node}
        return node

    def defaults_node(self) -> dict | None:
        """The ``fit_defaults`` that are values (not group choices), nested, for the package ``_global_`` node
        ``dataset_defaults/<name>``; None when there are none."""
        return _nested({k: copy.deepcopy(v) for k, v in self.fit_defaults.items() if k not in FIT_GROUPS}) or None

    def run_defaults(self) -> dict[str, Any]:
        """Every default that ``data=<name>`` sets beyond the common data defaults, as command-line keys
        (``data.limit_train``, ``depth``, ``optim``, ...): what ``fit --help`` lists for the dataset."""
        changed = {f"data.{k}": v for k, v in self.defaults.items()
                   if k in COMMON_DEFAULTS and k not in ("channels", "num_classes") and COMMON_DEFAULTS[k] != v}
        return {**dict(self.fit_defaults), **changed}


def _nested(values: Mapping[str, Any]) -> dict:
    """Dotted keys as nested dicts: ``{"a.b": 1}`` -> ``{"a": {"b": 1}}``."""
    tree: dict = {}
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


#: every dataset by name (horesnet.registry): horesnet.data locks the built-ins once it has registered them
DATASETS: Registry[Dataset] = Registry(
    "dataset", sort=True, label="data.name", pattern=r"[a-z_][a-z0-9_]*\Z",
    rule="use lower-case letters, digits and underscores, not starting with a digit (e.g. 'my_data')")


@DATASETS.on_change
def _declare_options(name: str, old: Dataset | None, new: Dataset | None) -> None:
    """A dataset's own keys join the fit command line (horesnet.spec), and leave it with the dataset."""
    if new is None:
        retract("fit", f"dataset {name!r}")
        return
    try:
        extend("fit", f"dataset {name!r}", dict(new.options))
    except ValueError as err:
        raise DATASETS.error(f"dataset {name!r}: {err}.") from None


@DATASETS.on_change
def _store_node(name: str, old: Dataset | None, new: Dataset | None) -> None:
    """The config node ``data=<name>`` in Hydra's ConfigStore (group ``data``), so it composes without a YAML file."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.repo.get(DEFAULTS_GROUP, {}).pop(f"{name}.yaml", None)
    if new is None:
        store.repo.get(CONFIG_GROUP, {}).pop(f"{name}.yaml", None)
        return
    store.store(group=CONFIG_GROUP, name=name, node=new.config_node(), provider="horesnet")
    values = new.defaults_node()
    if values is not None:  # the run's keys outside the data node (fit.yaml: optional dataset_defaults: ${data})
        store.store(group=DEFAULTS_GROUP, name=name, node=values, package="_global_", provider="horesnet")


def list_datasets() -> list[str]:
    """Sorted names of all registered datasets."""
    return DATASETS.names()


def get_dataset(name: str) -> Dataset:
    """The registered dataset ``name``; an unknown name is a ConfigError naming it and the valid choices."""
    return DATASETS.get(name)


def unregister_dataset(name: str) -> Dataset:
    """Remove a user-registered dataset, its config node and its options (built-ins cannot be removed)."""
    return DATASETS.unregister(name)


def dataset_facts(data: dict) -> DatasetFacts:
    """Image channels, classes and training-set size of a data config (``data["name"]`` and its options)."""
    facts = get_dataset(data["name"]).facts
    return facts(data) if callable(facts) else facts


_FIT_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


def _check_fit_defaults(name: str, fit_defaults: Mapping) -> None:
    """A key of ``fit_defaults`` is a fit key outside the data node: the data node's own keys go in ``defaults=``
    (common) or ``options=`` (the dataset's own); ``experiment`` is the user's; a group's choice is a name."""
    for key, value in fit_defaults.items():
        if not isinstance(key, str) or not _FIT_KEY.match(key):
            raise ConfigError(f"dataset {name!r}: fit_defaults key {key!r} is not a command-line key (e.g. 'depth', "
                              "'optim', 'trainer.max_epochs').")
        top = key.split(".")[0]
        if top == "data" or key in COMMON_DEFAULTS:
            raise ConfigError(f"dataset {name!r}: fit_defaults key {key!r} belongs to the data node: give it in "
                              "defaults= (a common key such as limit_train) or options= (a key of its own).")
        if top in ("experiment", "hydra", "defaults", "name", "seed", "plugins", "resume"):
            raise ConfigError(f"dataset {name!r}: fit_defaults cannot set {key!r} (the user's own choice).")
        if top in FIT_GROUPS and key == top and not (isinstance(value, str) and _FIT_KEY.match(value)):
            raise ConfigError(f"dataset {name!r}: fit_defaults {key!r} chooses a config group; give the name of "
                              f"one of its configs (e.g. {{'optim': 'transformer'}}), not {value!r}.")


def _check(ds: Dataset) -> None:
    if not callable(ds.load):
        raise ConfigError(f"dataset {ds.name!r}: load must be a function (root, download, verify, options).")
    if not ds.description or "\n" in ds.description:
        raise ConfigError(f"dataset {ds.name!r}: give a one-line description.")
    if isinstance(ds.facts, DatasetFacts):
        for key in ("channels", "num_classes"):
            if key in ds.defaults and ds.defaults[key] != getattr(ds.facts, key):
                raise ConfigError(f"dataset {ds.name!r}: defaults say {key}={ds.defaults[key]} but its facts say "
                                  f"{getattr(ds.facts, key)}.")
    elif not callable(ds.facts):
        raise ConfigError(f"dataset {ds.name!r}: facts must be a DatasetFacts or a function of the data config.")
    elif "channels" not in ds.defaults or "num_classes" not in ds.defaults:
        raise ConfigError(f"dataset {ds.name!r}: facts computed from the config need channels and num_classes in "
                          "its defaults.")
    for key, option in ds.options.items():
        if not key.startswith("data.") or key.split(".")[1] in COMMON_DEFAULTS:
            raise ConfigError(f"dataset {ds.name!r}: option {key!r} must be a key of its own, 'data.<key>' (not one "
                              f"of the common keys {', '.join(COMMON_DEFAULTS)}: change those with defaults=).")
        if not (isinstance(option.default, str) and option.default.startswith("${")):  # an interpolation
            option.spec.check(key, option.default)


def register_dataset(name: str, load: Loader, facts: DatasetFacts | Callable[[dict], DatasetFacts], *,
                     description: str, downloads=(), present: Callable[[Path], bool] | None = None,
                     missing: Callable[[Path, str], DataError] | None = None, defaults: Mapping | None = None,
                     options: Mapping[str, Option] | None = None, fit_defaults: Mapping | None = None,
                     overwrite: bool = False) -> Dataset:
    """Register a dataset (see :class:`Dataset`) and its config node ``data=<name>``; return the Dataset.

    ``downloads``: :class:`Download` objects (or URL strings). With downloads and no ``present``, the data is
    present when every downloaded file is in ``root/<name>/`` (see :func:`fetch`). ``fit_defaults``: what choosing
    the dataset changes outside its node, for the keys a command line does not set -- model keys, config group
    choices and dotted keys of other nodes (``{"depth": 8, "optim": "transformer", "trainer.max_epochs": 1}``;
    docs/extending_datasets.md, "Defaults of the whole run"). Re-using a name needs ``overwrite=True``; built-in
    datasets can never be replaced.
    """
    DATASETS.check_new(name, overwrite=overwrite)
    downloads = tuple(Download(d) if isinstance(d, str) else d for d in downloads)
    if present is None and downloads:
        present = lambda root: all((root / name / d.file).is_file() for d in downloads)
    own = [k for k in (defaults or {}) if k not in COMMON_DEFAULTS]
    if own:
        raise ConfigError(f"dataset {name!r}: defaults= changes the common keys only; declare its own key(s) "
                          f"{', '.join(map(repr, own))} in options= as {{'data.{own[0]}': Option(default, Spec(...), "
                          "help)}.")
    options = dict(options or {})
    for key, option in options.items():
        if not isinstance(option, Option):
            raise ConfigError(f"dataset {name!r}: option {key!r} must be an Option(default, Spec(...), help).")
    _check_fit_defaults(name, dict(fit_defaults or {}))
    own_defaults = _nested({key.partition(".")[2]: option.default for key, option in options.items()})
    ds = Dataset(name=name, load=load, facts=facts, description=description, downloads=downloads, present=present,
                 missing=missing, defaults={**(defaults or {}), **own_defaults}, options=options,
                 fit_defaults=copy.deepcopy(dict(fit_defaults or {})))
    _check(ds)
    return DATASETS.register(name, ds, overwrite=overwrite)  # its options and config node follow (on_change)


def missing_error(ds: Dataset, root: Path, why: str) -> DataError:
    """The dataset's own missing-data error, or one naming the files, their checksums and URLs."""
    if ds.missing is not None:
        return ds.missing(root, why)
    files = "; ".join(f"{d.file} (from {d.url}" + (f", md5 {' or '.join(sorted(d.md5))})" if d.md5 else ")")
                      for d in ds.downloads)
    return DataError(f"{ds.name} is not under {root} and could not be obtained ({why}). "
                     + (f"Put {files} in {root / ds.name}, or point " if files else "Point ")
                     + "data.root=... (or $HORESNET_DATA) at the folder that holds it.")


def fetch(name: str, root: Path, download_ok: bool = True, verify: bool = True) -> dict[str, Path]:
    """The dataset's downloaded files ``{file name: path}`` in ``root/<name>/``: each missing file is downloaded
    (through a temporary file, checked, renamed), each present one checked against its md5s when ``verify``."""
    ds = get_dataset(name)
    folder, paths = Path(root) / name, {}
    for d in ds.downloads:
        path = folder / d.file
        if not path.is_file():
            obtain([(d.url, path, d.md5)], download_ok, lambda why: missing_error(ds, Path(root), why))
        elif verify and d.md5 and checksum(path) not in d.md5:
            raise DataError(f"{path} has the wrong md5 (accepted: {', '.join(sorted(d.md5))}); the file is corrupt "
                            "or not the official one. Delete it to download it again, or set data.verify=false.")
        paths[d.file] = path
    return paths
