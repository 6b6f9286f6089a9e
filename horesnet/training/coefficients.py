"""Per-epoch metrics of the learned coefficients of multistep blocks (docs/multistep.md, "Training")."""

from __future__ import annotations


def coefficient_metrics(model) -> dict[str, float]:
    """``train/coef/<block>.<name>`` -> value of every learned multistep coefficient (momentum's gamma, lm's k);
    one per channel or a learned history (average's weights) gives ``..._mean``, ``..._min`` and ``..._max``.
    Empty for a network without learned coefficients. Read once per epoch (host reads: never inside a step)."""
    learned = getattr(model, "learned_coefficients", None)
    out = {}
    for address, values in (learned() if learned is not None else {}).items():
        for name, value in values.items():
            key = f"train/coef/{address}.{name}"
            if isinstance(value, list):
                if value:
                    out.update({f"{key}_mean": sum(value) / len(value), f"{key}_min": min(value),
                                f"{key}_max": max(value)})
            else:
                out[key] = float(value)
    return out
