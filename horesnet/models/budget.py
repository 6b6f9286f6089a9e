"""Memory a network needs, estimated from its layout before a single module is built (see ``docs/reliability.md``).

The estimates are deliberate *lower bounds* (the dominant terms only), so a network refused here could never have
fitted; a network accepted may still be tight.
"""

from __future__ import annotations

import os

from ..errors import ConfigError
from ..nn.units import get_unit

# Python/nn.Module bookkeeping per unit (measured: ~34 KB per basic unit at depth 12002 on CPython 3.11).
UNIT_OVERHEAD_BYTES = 32 * 1024
GIB = 1024 ** 3


def _unit_convs(unit: str, c: int) -> tuple[int, int]:
    """(weights, output channels summed over the unit's layers) of one steady-state unit of width c, as its
    registration declares it (zero when it declares nothing: the estimate stays a lower bound)."""
    cost = get_unit(unit).cost
    return cost(c) if cost is not None else (0, 0)


def _stage_sides(arch: str, stem_stride: int, image_size: int, stages: int) -> list[int]:
    side = max(1, image_size // (4 if arch == "imagenet" else stem_stride))
    return [max(1, side // 2 ** i) for i in range(stages)]


def estimate(layout, widths: list[int], stem_stride: int = 1, image_size: int | None = None,
             batch: int = 0, bytes_per_element: int = 4) -> dict:
    """Lower bounds of parameters and bytes: ``params``, ``build_bytes`` (weights + module bookkeeping) and
    ``train_bytes`` (weights, gradients and momentum, plus two saved activations per conv for ``batch`` images)."""
    image_size = image_size or (224 if layout.arch == "imagenet" else 32)
    sides = _stage_sides(layout.arch, stem_stride, image_size, len(widths))
    params = activations = 0
    for n, c, side in zip(layout.units_per_stage, widths, sides, strict=True):
        weights, channels = _unit_convs(layout.unit, c)
        params += n * weights
        activations += n * 2 * channels * side * side
    units = sum(layout.units_per_stage)
    return {"params": params, "build_bytes": 4 * params + UNIT_OVERHEAD_BYTES * units,
            "train_bytes": 3 * 4 * params + UNIT_OVERHEAD_BYTES * units + batch * activations * bytes_per_element}


def available_bytes(device: str = "cpu") -> int:
    """Memory this process could still use: free GPU memory for ``cuda``, else MemAvailable of the host."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_fits(need: int, what: str, device: str = "cpu", hint: str = "") -> None:
    have = available_bytes(device)
    if need > have:
        raise ConfigError(f"{what} needs at least {need / GIB:.1f} GiB (estimated from its layout), but only "
                          f"{have / GIB:.1f} GiB of {'GPU' if device.startswith('cuda') else 'host'} memory is "
                          f"available.{(' ' + hint) if hint else ''}")
