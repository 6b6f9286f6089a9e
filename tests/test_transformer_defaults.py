"""``python -m horesnet.fit data=shakespeare`` (or ``arch=transformer data=shakespeare``) is a few-minute CPU run:
the dataset declares its defaults of the rest of the run once (``register_dataset(..., fit_defaults=...)``), they
apply only to keys the command line does not set, the image datasets' defaults are unchanged, and a plugin
dataset declares its own the same way (docs/extending_datasets.md, "Defaults of the whole run")."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from horesnet.cli.compose import compose
from horesnet.cli.help import fit_help
from horesnet.data import DatasetFacts, get_dataset, register_dataset, unregister_dataset
from horesnet.data.registry import COMMON_DEFAULTS
from horesnet.errors import ConfigError

IMAGE_SETS = ("cifar10", "cifar100", "fashion_mnist", "mnist", "synthetic")


def composed(*overrides: str) -> dict:
    return OmegaConf.to_container(compose("fit", list(overrides)), resolve=True)


def small_run(cfg: dict) -> tuple:
    return (cfg["arch"], cfg["depth"], cfg["d_model"], cfg["optim"]["name"], cfg["optim"]["lr"],
            cfg["optim"]["schedule"], cfg["trainer"]["max_epochs"], cfg["data"]["limit_train"], cfg["name"])


@pytest.mark.parametrize("argv", [["arch=transformer", "data=shakespeare"], ["data=shakespeare"]])
def test_the_bare_shakespeare_command_is_small(argv):
    cfg = composed(*argv)
    assert small_run(cfg) == ("transformer", 8, 64, "adamw", 1e-3, "cosine", 1, 4096, "euler-d8")
    assert cfg["optim"]["warmup_steps"] == 100 and cfg["optim"]["weight_decay"] == 0.1  # optim=transformer
    assert cfg["data"]["seq_len"] == 64 and cfg["data"]["batch_size"] == 32


def test_it_is_the_command_that_was_timed_before():
    """The bare command composes exactly what the documented explicit command composed."""
    explicit = ["arch=transformer", "data=shakespeare", "depth=8", "optim=transformer", "trainer.max_epochs=1",
                "data.limit_train=4096"]
    assert composed("data=shakespeare") == composed(*explicit)


def test_every_explicit_key_wins():
    cfg = composed("data=shakespeare", "depth=16", "trainer.max_epochs=2", "optim=he", "d_model=32",
                   "data.limit_train=null")
    assert small_run(cfg)[:8] == ("transformer", 16, 32, "sgd", 0.1, "multistep", 2, None)
    assert composed("data=shakespeare", "optim.lr=3e-4")["optim"]["lr"] == 3e-4
    assert composed("data=shakespeare", "arch=cifar")["arch"] == "cifar"  # refused later, by name (check_task)
    gpu = composed("data=shakespeare", "trainer=gpu")
    assert gpu["trainer"]["accelerator"] == "gpu" and gpu["trainer"]["max_epochs"] == 1


@pytest.mark.parametrize("name", IMAGE_SETS)
def test_image_sets_compose_as_without_the_mechanism(name):
    """Removing the dataset-defaults entry from fit.yaml's defaults list changes nothing for an image set, and
    the He et al. recipe is still the default (depth 56, SGD 0.1, 182 epochs)."""
    with_it = composed(f"data={name}", "block=rk4", "depth=56")
    assert with_it == composed(f"data={name}", "block=rk4", "depth=56", "~dataset_defaults")
    assert not get_dataset(name).fit_defaults
    bare = composed(f"data={name}")
    assert (bare["arch"], bare["depth"], bare["block"], bare["d_model"]) == ("cifar", 56, "euler", 64)
    assert (bare["optim"]["name"], bare["optim"]["lr"], bare["optim"]["milestones"]) == ("sgd", 0.1, [0.5, 0.75])
    assert bare["trainer"]["max_epochs"] == 182 and bare["data"]["limit_train"] is None


def test_the_hydra_run_composes_the_same(tmp_path):
    """The training job's own composition (@hydra.main, ``--cfg job``) applies the same defaults."""
    out = subprocess.run([sys.executable, "-m", "horesnet.fit", "data=shakespeare", "--cfg", "job"],
                         capture_output=True, text=True, timeout=240, cwd=tmp_path, check=True).stdout
    cfg = yaml.safe_load(out)
    assert (cfg["arch"], cfg["depth"], cfg["d_model"], cfg["optim"]["name"], cfg["trainer"]["max_epochs"],
            cfg["data"]["limit_train"]) == ("transformer", 8, 64, "adamw", 1, 4096)


def test_help_says_what_the_datasets_default_to():
    text = " ".join(fit_help([]).split())
    assert ("data=shakespeare also sets, for keys not given: arch=transformer depth=8 d_model=64 optim=transformer "
            "trainer.max_epochs=1") in text
    assert "data.limit_train=4096" in text
    chosen = " ".join(fit_help(["data=shakespeare"]).split())
    assert "optim= config group; transformer (the default of data=shakespeare; else he)" in chosen
    assert "depth= cifar: 6n+2" in chosen and "default 8." in chosen


def _toy(root, download, verify, options):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 1, 8, 8), dtype=np.uint8)
    return x, np.arange(40) % 2, x[:10], np.arange(10) % 2


def test_a_plugin_dataset_declares_its_defaults_the_same_way():
    register_dataset("toy_defaults", _toy, DatasetFacts(1, 2, 40), description="toy", defaults={"val_size": 8},
                     fit_defaults={"depth": 8, "width": 0.25, "optim": "cosine", "trainer.max_epochs": 3})
    cfg = composed("data=toy_defaults")
    assert (cfg["depth"], cfg["width"], cfg["optim"]["schedule"], cfg["trainer"]["max_epochs"]) == (8, 0.25,
                                                                                                   "cosine", 3)
    assert composed("data=toy_defaults", "depth=14", "optim=he")["depth"] == 14
    assert composed("data=toy_defaults", "optim=he")["optim"]["schedule"] == "multistep"
    assert "data=toy_defaults also sets, for keys not given: depth=8 width=0.25 optim=cosine" in " ".join(
        fit_help([]).split())
    unregister_dataset("toy_defaults")
    with pytest.raises(ConfigError):
        composed("data=toy_defaults")


@pytest.mark.parametrize("fit_defaults, words", [
    ({"data.limit_train": 10}, "belongs to the data node"),
    ({"limit_train": 10}, "belongs to the data node"),
    ({"experiment": "he2015_resnet56"}, "the user's own choice"),
    ({"optim": 3}, "chooses a config group"),
    ({"trainer max_epochs": 3}, "not a command-line key"),
])
def test_fit_defaults_refused_by_name(fit_defaults, words):
    with pytest.raises(ConfigError, match=words):
        register_dataset("toy_bad", _toy, DatasetFacts(1, 2, 40), description="toy", fit_defaults=fit_defaults)
    assert "limit_train" in COMMON_DEFAULTS


def test_fashion_mnist_rows_defaults_to_a_small_encoder():
    cfg = composed("data=fashion_mnist_rows")
    assert small_run(cfg)[:8] == ("transformer", 4, 64, "adamw", 1e-3, "cosine", 2, None)
