"""Shared fixtures for the model, block and CLI tests."""

from __future__ import annotations

import pytest
import torch

from horesnet import plugin_errors
from horesnet.registry import restore_all, snapshot_all

# The tests run tiny tensors (8x8 images, batch 2), for which intra-op threads only add overhead; on a busy
# 2-core machine their spin-waiting multiplies the run time several-fold.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state, so failures are reproducible."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def registries():
    """Every registry (horesnet.registry.registries(): schemes, units, placements, families, datasets, studies, and
    any added later) and the record of loaded plugins as they were before the test, restored after it -- with what
    the registries derive (Hydra's ConfigStore nodes, the command-line keys of datasets and studies). A test may
    register whatever it likes; no other test sees it."""
    before, loaded = snapshot_all(), dict(plugin_errors.LOADED)
    yield before
    restore_all(before)
    plugin_errors.LOADED.clear()
    plugin_errors.LOADED.update(loaded)


@pytest.fixture
def scheme_registry_guard(registries):
    """The name older tests ask for: the autouse ``registries`` fixture already restores every registry."""
    return registries
