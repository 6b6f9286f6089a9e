"""The shared study recipe of ``experiments/common.sh``: the overrides it hands to ``horesnet.fit`` compose, and its
knobs (``TRAINER``, ``PRECISION``, ``EPOCHS``, ``LIMIT``) reach the composed config as docs/converged.md says."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from horesnet.cli.compose import compose

REPO = Path(__file__).resolve().parent.parent


def _recipe(**knobs: str) -> list[str]:
    """``RECIPE`` as bash builds it after sourcing common.sh with ``knobs`` in the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("TRAINER", "PRECISION", "EPOCHS", "LIMIT")}
    proc = subprocess.run(["bash", "-c", 'source experiments/common.sh && printf "%s\\0" "${RECIPE[@]}"'],
                          cwd=REPO, env={**env, **knobs}, capture_output=True, text=True, timeout=60, check=True)
    return proc.stdout.split("\0")[:-1]


def test_default_recipe_is_the_cpu_trainer_in_bf16():
    recipe = _recipe()
    assert not any(o.startswith("trainer=") for o in recipe)
    cfg = compose("fit", ["block=euler", "depth=20", *recipe])
    assert cfg.trainer.accelerator == "cpu" and cfg.trainer.precision == "bf16-mixed" and cfg.channels_last
    assert cfg.data.name == "fashion_mnist" and cfg.data.limit_train == 10000 and cfg.trainer.max_epochs == 4
    assert cfg.logger.wandb.mode == "offline"


@pytest.mark.parametrize(("precision", "layout"), [("bf16-mixed", True), ("32-true", False)])
def test_trainer_knob_selects_the_gpu_group(precision, layout):
    recipe = _recipe(TRAINER="gpu", PRECISION=precision, EPOCHS="30", LIMIT="2000")
    assert recipe[0] == "trainer=gpu"
    cfg = compose("fit", ["block=rk4", "depth=56", *recipe])
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.benchmark  # the gpu group's own settings
    assert cfg.trainer.precision == precision and cfg.channels_last is layout  # the recipe's knobs win
    assert cfg.trainer.max_epochs == 30 and cfg.data.limit_train == 2000
