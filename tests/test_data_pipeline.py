"""Tests of horesnet.data's batched augmentation (random crop and flip, normalisation) and the data module
(train/val/test splits, epoch order).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from horesnet.data import ArrayDataModule, normalise, random_crop_flip

# --------------------------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------------------------


def _find_crops(x: torch.Tensor, out: torch.Tensor, padding: int = 4):
    """For each output image, every (dy, dx, flipped) whose window of the zero-padded input equals it."""
    b, c, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    windows = xp.unfold(2, h, 1).unfold(3, w, 1)  # (B, C, 2p+1, 2p+1, H, W)
    found = []
    for target in (out, out.flip(3)):
        eq = (windows == target[:, :, None, None]).all(dim=(1, 4, 5))  # (B, 2p+1, 2p+1)
        found.append(eq)
    return found


def test_random_crop_flip_windows_of_padded_input():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (512, 3, 32, 32), dtype=torch.uint8, generator=g)
    out = random_crop_flip(x, padding=4, flip=True, generator=torch.Generator().manual_seed(123))
    assert out.shape == x.shape and out.dtype == torch.uint8
    plain, flipped = _find_crops(x, out)
    matches = plain.sum(dim=(1, 2)) + flipped.sum(dim=(1, 2))
    assert (matches == 1).all(), "every output must be exactly one 32x32 window (maybe flipped) of the padded input"
    is_flipped = flipped.any(dim=(1, 2))
    offsets = (plain | flipped).nonzero()[:, 1:]  # (B, 2) = (dy, dx), in batch order
    assert 0.4 < is_flipped.float().mean() < 0.6
    for axis in range(2):
        counts = torch.bincount(offsets[:, axis], minlength=9)
        assert len(counts) == 9 and (counts > 20).all(), f"offsets 0..8 must all occur: {counts.tolist()}"
    # crops reach into the zero padding: some output rows/cols are entirely zero
    assert (out[offsets[:, 0] == 0][:, :, :4] == 0).all()


def test_random_crop_flip_options_and_determinism():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(random_crop_flip(x, padding=0, flip=False), x)
    flips = random_crop_flip(x, padding=0, flip=True, generator=torch.Generator().manual_seed(1))
    same = (flips == x).flatten(1).all(1)
    mirrored = (flips == x.flip(3)).flatten(1).all(1)
    assert (same | mirrored).all() and same.any() and mirrored.any()
    a = random_crop_flip(x, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(999)  # the global RNG must not matter
    b = random_crop_flip(x, generator=torch.Generator().manual_seed(5))
    c = random_crop_flip(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_normalise_own_statistics():
    g = torch.Generator().manual_seed(0)
    x = torch.stack([torch.randint(0, 100, (256, 32, 32), generator=g),
                     torch.randint(100, 256, (256, 32, 32), generator=g),
                     torch.randint(0, 256, (256, 32, 32), generator=g)], dim=1).to(torch.uint8)
    xf = x.double() / 255
    mean, std = xf.mean(dim=(0, 2, 3)).float(), xf.std(dim=(0, 2, 3)).float()
    y = normalise(x, mean, std)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert torch.allclose(y.double().mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(y.double().std(dim=(0, 2, 3)), torch.ones(3, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(y[3, 1, 4, 5], (x[3, 1, 4, 5].float() / 255 - mean[1]) / std[1])
    assert x.dtype == torch.uint8  # input untouched


# --------------------------------------------------------------------------------------------------------------
# Data module
# --------------------------------------------------------------------------------------------------------------

N_TRAIN, N_TEST = 300, 40


@pytest.fixture
def indexed_arrays(monkeypatch):
    """Replace the dataset by images that carry their own index in pixels (0,0,0) and (0,0,1)."""
    def arrays(n):
        x = np.zeros((n, 3, 32, 32), np.uint8)
        x[:, 0, 0, 0] = np.arange(n) % 256
        x[:, 0, 0, 1] = np.arange(n) // 256
        x[:, 1:] = np.random.default_rng(n).integers(0, 256, (n, 2, 32, 32))
        return x, (np.arange(n) % 10).astype(np.int64)

    def fake_load(name, root=None, download=True, verify=True, synthetic=None):
        return (*arrays(N_TRAIN), *arrays(N_TEST))

    import horesnet.data.module as module

    monkeypatch.setattr(module, "load_arrays", fake_load)


def _ids(x: torch.Tensor) -> list[int]:
    return (x[:, 0, 0, 0].long() + 256 * x[:, 0, 0, 1].long()).tolist()


def _module(**kw):
    dm = ArrayDataModule(**{"name": "synthetic", "val_size": 60, "batch_size": 32, **kw})
    dm.setup("fit")
    return dm


def test_split_disjoint_fixed_size_and_seed_independent(indexed_arrays):
    dm = _module(seed=0)
    train, val, test = (_ids(dm.splits[s].x) for s in ("train", "val", "test"))
    assert len(val) == 60 and len(train) == N_TRAIN - 60 and len(test) == N_TEST
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(N_TRAIN))
    assert test == list(range(N_TEST))
    assert (dm.splits["train"].y.numpy() == np.array(train) % 10).all()
    assert (dm.splits["val"].y.numpy() == np.array(val) % 10).all()
    for seed in (1, 7):
        other = _module(seed=seed)
        assert _ids(other.splits["val"].x) == val, "the validation split must not depend on the run seed"
    assert set(_ids(_module(split_seed=1).splits["val"].x)) != set(val)
    limited = _module(limit_train=50, limit_val=10)
    assert _ids(limited.splits["train"].x) == train[:50]
    assert _ids(limited.splits["val"].x) == val[:10]
    # normalisation statistics: per-channel mean/std of the training split (independent computation)
    xs = dm.splits["train"].x.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(dm.mean.numpy(), xs.mean(axis=(0, 2, 3)), atol=1e-5)
    np.testing.assert_allclose(dm.std.numpy(), xs.std(axis=(0, 2, 3), ddof=1), atol=1e-4)


def _epoch_order(dm, epoch: int) -> list[int]:
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return [i for x, _ in loader for i in _ids(x)]


def test_train_order_depends_on_seed_and_epoch_only(indexed_arrays):
    dm_a, dm_b, dm_c = _module(seed=3), _module(seed=3), _module(seed=4)
    train = sorted(_ids(dm_a.splits["train"].x))
    torch.manual_seed(1)
    a0 = _epoch_order(dm_a, 0)
    torch.manual_seed(2)  # global RNG state must not matter
    b0 = _epoch_order(dm_b, 0)
    assert a0 == b0
    assert sorted(a0) == train, "an epoch visits every training image exactly once"
    a1 = _epoch_order(dm_a, 1)
    assert a1 != a0 and sorted(a1) == train
    assert _epoch_order(dm_b, 1) == a1
    assert _epoch_order(dm_a, 0) == a0, "epoch 0 again gives the same order"
    assert _epoch_order(dm_c, 0) != a0
    batches = list(dm_a.train_dataloader())
    assert [len(y) for _, y in batches] == [32] * 7 + [16]
    for x, y in batches:  # each batch: images with their own labels
        assert (y.numpy() == np.array(_ids(x)) % 10).all()
