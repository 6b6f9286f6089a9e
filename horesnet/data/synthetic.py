"""A synthetic, learnable image-classification set for smoke tests and benchmarks (no files involved).

Each class has a fixed random low-frequency prototype; an image is its class prototype plus noise, as uint8.
"""

from __future__ import annotations

import numpy as np


def make_synthetic(train_size: int = 1024, test_size: int = 256, num_classes: int = 10, channels: int = 3,
                   image_size: int = 32, noise: float = 40.0, seed: int = 1234):
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0, 1, size=(num_classes, channels, 4, 4))
    protos = np.kron(coarse, np.ones((1, 1, image_size // 4 + 1, image_size // 4 + 1)))[..., :image_size, :image_size]
    protos = 128 + 50 * protos

    def draw(n):
        y = rng.integers(0, num_classes, size=n)
        x = protos[y] + rng.normal(0, noise, size=(n, channels, image_size, image_size))
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    x_train, y_train = draw(train_size)
    x_test, y_test = draw(test_size)
    return x_train, y_train, x_test, y_test
