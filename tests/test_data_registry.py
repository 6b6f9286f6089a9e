"""Tests of the dataset registry (horesnet/data/registry.py): the built-ins compose exactly as the YAML files they
replaced did, unknown names are refused with the choices, registrations are checked, and a dataset with downloaded
files is fetched, verified and checked for presence from its description alone.

The expected ``data`` nodes are the former ``configs/data/*.yaml`` files, typed here: cifar10.yaml in full, the
others as that file with their own lines (fashion_mnist/mnist: ``defaults: [cifar10, _self_]``, name, channels 1).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from horesnet.cli.compose import _config_groups, compose
from horesnet.data import (
    ArrayDataModule,
    DataError,
    DatasetFacts,
    Download,
    check_available,
    fetch,
    get_dataset,
    list_datasets,
    load_arrays,
    register_dataset,
)
from horesnet.errors import ConfigError
from horesnet.spec import Option, Spec

from ._data_helpers import _fake_urlopen, _files

CIFAR10_YAML = """\
name: cifar10
root: null
download: true
verify: true
channels: 3
num_classes: 10
val_size: 5000
split_seed: 0
batch_size: 128
eval_batch_size: 500
augment: true
crop_padding: 4
flip: true
limit_train: null
limit_val: null
limit_test: null
num_workers: 0
"""
SYNTHETIC_TAIL = """\
synthetic:
  train_size: 640
  test_size: 128
  num_classes: ${..num_classes}
  channels: ${..channels}
  image_size: 32
"""
EXPECTED = {
    "cifar10": CIFAR10_YAML,
    "cifar100": CIFAR10_YAML.replace("name: cifar10", "name: cifar100").replace("num_classes: 10", "num_classes: 100"),
    "fashion_mnist": CIFAR10_YAML.replace("name: cifar10", "name: fashion_mnist").replace("channels: 3", "channels: 1"),
    "mnist": CIFAR10_YAML.replace("name: cifar10", "name: mnist").replace("channels: 3", "channels: 1"),
    "synthetic": CIFAR10_YAML.replace("name: cifar10", "name: synthetic").replace("val_size: 5000", "val_size: 128")
    .replace("batch_size: 128", "batch_size: 32").replace("eval_batch_size: 500", "eval_batch_size: 128")
    + SYNTHETIC_TAIL,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_data_nodes_equal_the_former_yaml_files(name):
    """Same keys, same order, same values, same interpolations: the YAML text of the composed node is identical."""
    assert OmegaConf.to_yaml(compose("fit", [f"data={name}"]).data) == EXPECTED[name]


def test_the_default_and_the_experiments_use_cifar10():
    assert OmegaConf.to_yaml(compose("fit", []).data) == EXPECTED["cifar10"]
    assert OmegaConf.to_yaml(compose("fit", ["experiment=he2015_resnet20"]).data) == EXPECTED["cifar10"]


def test_the_registry_lists_the_builtins_and_the_data_group():
    assert {"cifar10", "cifar100", "fashion_mnist", "mnist", "synthetic"} <= set(list_datasets())
    assert set(list_datasets()) == set(_config_groups()["data"])
    assert get_dataset("cifar100").facts == DatasetFacts(3, 100, 50_000)
    assert get_dataset("mnist").hosts == ("ossci-datasets.s3.amazonaws.com",)
    assert get_dataset("cifar10").hosts == ("www.cs.toronto.edu",)


def test_an_unknown_dataset_names_the_choices():
    with pytest.raises(ConfigError) as info:
        get_dataset("cifar11")
    assert "'cifar11'" in str(info.value) and "'cifar10'" in str(info.value) and "'mnist'" in str(info.value)
    with pytest.raises(ConfigError, match="'cifar11'.*'synthetic'"):
        ArrayDataModule(name="cifar11")


def _load_nothing(root, download, verify, options):
    return ()


@pytest.mark.parametrize("kwargs, words", [
    ({"name": "cifar10"}, ["built in"]),
    ({"name": "My-Data"}, ["invalid dataset name", "'My-Data'"]),
    ({"name": "reg_a", "defaults": {"shift": 0}}, ["'shift'", "options=", "Option(default, Spec"]),
    ({"name": "reg_b", "options": {"data.shift": Spec("int")}}, ["data.shift", "Option(default"]),
    ({"name": "reg_b2", "options": {"data.batch_size": Option(4, Spec("int"))}}, ["data.batch_size", "common"]),
    ({"name": "reg_b3", "options": {"data.shift": Option(-1, Spec("int", low=0))}}, ["data.shift=-1"]),
    ({"name": "reg_c", "facts": DatasetFacts(3, 10, 100), "defaults": {"channels": 1}}, ["channels=1", "3"]),
    ({"name": "reg_d", "facts": lambda data: DatasetFacts(3, 10, 100)}, ["channels and num_classes"]),
    ({"name": "reg_e", "description": "two\nlines"}, ["one-line description"]),
    ({"name": "reg_f", "options": {"data.synthetic.image_size": Option(8, Spec("int", low=1))}},
     ["already declared by dataset 'synthetic'"]),
])
def test_bad_registrations_are_refused(kwargs, words):
    args = {"load": _load_nothing, "facts": DatasetFacts(1, 2, 10), "description": "a test", **kwargs}
    with pytest.raises(ConfigError) as info:
        register_dataset(args.pop("name"), args.pop("load"), args.pop("facts"), **args)
    assert all(w in str(info.value) for w in words), str(info.value)
    assert kwargs["name"] == "cifar10" or kwargs["name"] not in list_datasets()


def test_a_reader_returning_the_wrong_arrays_is_named():
    bad = (np.zeros((4, 1, 8, 8), np.float32), np.zeros(4, np.int64), np.zeros((2, 1, 8, 8), np.uint8),
           np.zeros(2, np.int64))
    register_dataset("reg_floats", lambda root, download, verify, options: bad, DatasetFacts(1, 2, 4),
                     description="returns float images", overwrite=True)
    with pytest.raises(DataError, match="reg_floats.*float32"):
        load_arrays("reg_floats")
    with pytest.raises(ConfigError, match="already registered"):
        register_dataset("reg_floats", _load_nothing, DatasetFacts(1, 2, 4), description="again")


def test_unknown_data_options_are_refused_and_other_datasets_options_ignored():
    with pytest.raises(ConfigError, match="'?nonsense'?.*synthetic"):
        ArrayDataModule(name="synthetic", nonsense=1)
    dm = ArrayDataModule(name="cifar10", synthetic={"train_size": 8})  # a data config may carry another's keys
    assert dm.options == {}


def test_a_dataset_with_downloads_is_fetched_verified_and_checked(tmp_path, monkeypatch):
    """From the description alone: presence means every file in root/<name>/, missing files are downloaded and
    checked against their md5s, and the missing-data message names the files, checksums and URLs."""
    body = b"\x00\x01 some file bytes \x02"
    good = hashlib.md5(body).hexdigest()
    url = "https://data.example.org/sets/blob.bin"
    register_dataset("reg_files", _load_nothing, DatasetFacts(1, 2, 10), description="one downloaded file",
                     downloads=(Download(url, frozenset({good})),), overwrite=True)
    root = tmp_path / "root"
    with pytest.raises(DataError) as info:
        check_available("reg_files", root, download=False)
    msg = str(info.value)
    assert "blob.bin" in msg and good in msg and url in msg and str(root) in msg and "data.download=false" in msg
    requested = _fake_urlopen(monkeypatch, lambda u: body)
    paths = fetch("reg_files", root)
    assert requested == [url] and paths == {"blob.bin": root / "reg_files" / "blob.bin"}
    assert paths["blob.bin"].read_bytes() == body
    check_available("reg_files", root, download=False)  # now present
    paths["blob.bin"].write_bytes(b"tampered")
    with pytest.raises(DataError, match="md5"):
        fetch("reg_files", root)
    fetch("reg_files", root, verify=False)
    other = tmp_path / "other"
    _fake_urlopen(monkeypatch, lambda u: b"not the file")
    with pytest.raises(DataError, match="md5"):
        fetch("reg_files", other)
    assert _files(other) == [], "a download that fails its checksum must not be kept"


def test_the_recipe_in_the_docs_works_as_a_plugin(tmp_path):
    """The first code block of docs/extending_datasets.md, saved as a file and named by ``plugins=``."""
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "extending_datasets.md").read_text()
    plugin = tmp_path / "stripes.py"
    plugin.write_text(re.search(r"```python\n(.*?)```", doc, re.S).group(1))
    cfg = compose("fit", [f"plugins=[{plugin}]", "data=stripes", "data.noise=10"])
    data = OmegaConf.to_container(cfg.data, resolve=True)
    assert (data["channels"], data["num_classes"], data["val_size"], data["noise"]) == (3, 4, 100, 10)
    assert (cfg.in_channels, cfg.num_classes) == (3, 4)
    dm = ArrayDataModule(**data)
    dm.setup()
    assert [len(dm.splits[s].y) for s in ("train", "val", "test")] == [900, 100, 200]
    assert dm.splits["train"].x.shape[1:] == (3, 32, 32)
    with pytest.raises(ConfigError, match="data.noise=-1"):
        compose("fit", [f"plugins=[{plugin}]", "data=stripes", "data.noise=-1"])
