"""Robustness to Gaussian input noise (HO-ResNet, Luo et al. 2021, claim higher robustness for higher-order
blocks): accuracy and expected calibration error as the pixel noise sigma grows."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_calibration_error

from .common import EvalData, evaluating


def robustness(model, data, sigmas=(0.0, 0.02, 0.05, 0.1, 0.2), seed: int = 0, n_bins: int = 15) -> list[dict]:
    """For each sigma (in pixel units, images in [0, 1]): accuracy, error (fractions in [0, 1]), ECE and loss under
    x + sigma * N(0, 1)."""
    data = EvalData.wrap(data)
    records = []
    with evaluating(model):
        for sigma in sigmas:
            gen = torch.Generator().manual_seed(seed)
            logits, labels = [], []
            for x, y in data.batches:
                scale = 1.0 if data.pixel_std is None else data.pixel_std.to(x.device).view(1, -1, 1, 1)
                noise = torch.randn(x.shape, generator=gen).to(x.device)
                logits.append(model(x + sigma * noise / scale).float())
                labels.append(y)
            z, y = torch.cat(logits), torch.cat(labels)
            acc = int((z.argmax(1) == y).sum()) / y.numel()  # exact: no float32 mean (0.8485000134)
            ece = float(multiclass_calibration_error(z.softmax(1), y, num_classes=z.shape[1], n_bins=n_bins))
            records.append({"sigma": float(sigma), "accuracy": acc, "error": 1 - acc, "ece": ece,
                            "loss": float(F.cross_entropy(z, y))})
    return records
