"""Iterative refinement (Jastrzebski et al. 2018; the "boosting" view of Veit et al.): the trained head applied to
every block's output. A block output narrower than the head is zero-padded in channels -- exactly what option-A
skip paths would carry to the head if every later unit were deleted."""

from __future__ import annotations

import torch.nn.functional as F

from .common import EvalData, evaluating, score


def refinement(model, data) -> list[dict]:
    """Loss, accuracy and error (fractions in [0, 1]) of ``head(final(block output))`` after every block, in
    forward order."""
    data = EvalData.wrap(data)
    blocks = list(model.blocks())
    tallies = [[0, 0.0] for _ in blocks]
    n = 0
    with evaluating(model):
        for x, y in data.batches:
            taps = model.forward_intermediates(x, level="block", intermediates_only=True)[1:]  # every block output
            for t, h in zip(tallies, taps, strict=True):
                extra = model.num_features - h.shape[1]
                hp = F.pad(h, (0, 0, 0, 0, 0, extra)) if extra > 0 else h
                c, l = score(model.forward_head(model.forward_final(hp)), y)
                t[0] += c
                t[1] += l
            n += len(y)
    return [{"block": i + 1, "address": a, "scheme": spec.scheme, "channels_padded": model.num_features > _width(b),
             "accuracy": c / n, "error": 1 - c / n, "loss": l / n}
            for i, ((a, b, spec), (c, l)) in enumerate(zip(blocks, tallies, strict=True))]


def _width(block) -> int:
    """The output channels of ``block``: those of its last module that has any."""
    return next((m.out_channels for m in reversed(list(block.modules())) if hasattr(m, "out_channels")), 0)
