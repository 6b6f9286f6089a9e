"""Shared fixtures for the model, block and CLI tests."""

from __future__ import annotations

import pytest
import torch

from horesnet import list_schemes
from horesnet.schemes.registry import unregister_scheme

# The tests run tiny tensors (8x8 images, batch 2), for which intra-op threads only add overhead; on a busy
# 2-core machine their spin-waiting multiplies the run time several-fold.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state, so failures are reproducible."""
    torch.manual_seed(0)


@pytest.fixture
def scheme_registry_guard():
    """Unregister whatever a test registers, so other tests see only the built-in schemes."""
    before = set(list_schemes("all"))
    yield
    for name in set(list_schemes("all")) - before:
        unregister_scheme(name)
