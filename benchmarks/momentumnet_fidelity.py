"""Reversible momentum networks' gradient fidelity: horesnet against momentumnet 0.10 (docs/multistep.md).

    pip install --no-deps momentumnet==0.10     # the optional benchmark dependency (see below)
    nice -n 10 python -m benchmarks.momentumnet_fidelity [--quick] [--out FILE.json] [--plot FILE.png]

momentumnet (Sander et al., ICML 2021; PyPI 0.10, pure Python) declares torchvision, imageio and vit-pytorch as
dependencies, which only its training scripts import; installing them would replace torch. ``--no-deps`` keeps the
environment's torch (``MomentumNet`` itself needs torch and numpy only).

One stage of T units BN(4)-tanh-conv3x3(4, 4) (weights N(0, 0.1²)), the network of ``benchmarks.multistep``'s
``accuracy`` part with the same seed, so the same weights; input and loss weights N(0, 1) of shape (4, 4, 8, 8);
loss = sum(out * w). The same units (deep copies of one set, made before any forward, so also the same BatchNorm
buffers) run in six networks, training mode, one forward and backward each:

- ``loop``: the recurrence v <- γ v + (1 − γ) f_n(x), x <- x + v written here with plain autograd: the independent
  reference for both libraries;
- ``loop_gamma_effective``: the same loop with momentumnet's effective γ for the velocity product (below);
- ``horesnet_autograd`` / ``horesnet_reversible``: ``MultistepBlock(get_scheme("momentum"), units, value=γ)``
  without and with ``set_reversible(True)``;
- ``momentumnet_backprop`` / ``momentumnet_memory_free``: ``MomentumNet(units, gamma=γ, use_backprop=True/False)``.

For every cell of γ ∈ {0.5, 0.9, 0.99} × T ∈ {10, 50, 100, 200} × {float32, float64}: the relative gradient error
‖g − g_ref‖/‖g_ref‖ over the stage input and every unit parameter (concatenated) of (a) horesnet reversible against
horesnet autograd and against the loop, (b) momentumnet memory-free against the loop (and against the loop at its
effective γ and against its own backprop mode); the relative forward error of each output against the loop;
BatchNorm ``num_batches_tracked`` after the step; momentumnet's effective γ: its exact-arithmetic velocity
(``TorchExactRep``) multiplies by the rational n/d = int(γ·2^16 + 1)/2^16, while (1 − γ) f is used as given. Per
cell, horesnet's own prediction: ``MultistepBlock.predicted_inversion_error`` (the first-order model
eps·Σ_{m<T}|h_m| over every root of ρ, :func:`horesnet.schemes.stage.inversion_error`) at float32's eps against
``REVERSIBLE_TOLERANCE`` (1e-4), the comparison with which the network factory refuses ``reversible=true`` (the
factory verdict itself is read too: ``build_model`` with three such stages, refused or not), and the safe depth it
gives. The factory checks float32 only; the prediction at the cell's own dtype is recorded beside it, against the
measured relative error of the rebuilt stage input (``last_reconstruction_error``): ``prediction_vs_measured_input``
in the summary lists the cells where the prediction is below the measurement. ``tolerance_choice`` gives the range of
float32 tolerances whose predicted-safe cells are exactly those with a gradient error <= 1e-5. Gradient tolerances:
1e-5 (float32), 1e-10 (float64); a library "fails" a cell when its error is above the tolerance or not finite.

The horesnet half is checked against ``benchmarks.multistep.accuracy`` run on the same grid (same weights: the
reversible-vs-autograd errors must agree). A small check of momentumnet's ``TorchExactRep`` round trip (multiply by
γ and add, then undo) with negative and positive increments is recorded too.

Writes ``benchmarks/results/momentumnet_fidelity.json`` and ``.png`` (horesnet | momentumnet: relative error against
depth, one line per γ and dtype, horesnet's predicted safe depths shaded, the tolerances drawn) and prints a
Markdown table. Errors only: nothing is timed.
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import warnings
from pathlib import Path

import torch
from torch import nn

from . import _harness as h
from .multistep import accuracy as horesnet_accuracy

GAMMAS = (0.5, 0.9, 0.99)
DEPTHS = (10, 50, 100, 200)
DTYPES = (torch.float32, torch.float64)
TOLERANCE = {"float32": 1e-5, "float64": 1e-10}
NETS = ("loop", "loop_gamma_effective", "horesnet_autograd", "horesnet_reversible", "momentumnet_backprop",
        "momentumnet_memory_free")
OUT = h.RESULTS / "momentumnet_fidelity.json"


def momentumnet_or_exit():
    try:
        import momentumnet
    except ImportError:
        raise SystemExit("momentumnet is not installed: pip install --no-deps momentumnet==0.10 (an optional benchmark "
                         "dependency; its declared dependencies would replace torch)") from None
    return momentumnet


def effective_gamma(gamma: float) -> float:
    """The factor momentumnet's ``TorchExactRep`` multiplies the velocity by for ``gamma`` (a rational n/d)."""
    from momentumnet.exact_rep_pytorch import TorchExactRep

    n, d = TorchExactRep(torch.zeros(1)).float_to_rational(gamma)
    return n / d


def exact_rep_round_trip(gamma: float = 0.9, steps: int = 10, size: int = 1000) -> dict:
    """Entries of momentumnet's exact velocity that differ from the forward's after undoing ``steps`` products and
    additions, for positive, negative and mixed-sign increments (exact arithmetic: 0 each)."""
    from momentumnet.exact_rep_pytorch import TorchExactRep

    gen = torch.Generator().manual_seed(0)
    out = {}
    for sign in ("positive", "negative", "mixed"):
        incs = [torch.rand(size, generator=gen, dtype=torch.float64) * 0.1 for _ in range(steps)]
        if sign != "positive":
            s = -torch.ones(size, dtype=torch.float64) if sign == "negative" else \
                torch.randint(0, 2, (size,), generator=gen).double() * 2 - 1
            incs = [a * s for a in incs]
        v = TorchExactRep(torch.zeros(size, dtype=torch.float64))
        for a in incs:
            v *= gamma
            v += a
        for a in reversed(incs):
            v += -a
            v /= gamma
        out[sign] = {"entries_not_restored": int((v.intrep != 0).sum()), "of": size,
                     "max_abs_velocity_left": float(v.val.abs().max())}
    return {"gamma": gamma, "steps": steps, **out}


def residual_functions(units: int) -> list[nn.Module]:
    """BN-tanh-conv units as ``benchmarks.multistep.accuracy`` builds them (call after ``torch.manual_seed(0)``)."""
    out = []
    for _ in range(units):
        conv = nn.Conv2d(4, 4, 3, padding=1)
        nn.init.normal_(conv.weight, std=0.1)
        out.append(nn.Sequential(nn.BatchNorm2d(4), nn.Tanh(), conv))
    return out


class PlainLoop(nn.Module):
    """v <- γ_v v + (1 − γ) f_n(x); x <- x + v from v = 0, with plain autograd (the independent reference)."""

    def __init__(self, functions: list[nn.Module], gamma: float, gamma_velocity: float | None = None):
        super().__init__()
        self.units = nn.ModuleList(functions)
        self.gamma = gamma
        self.gamma_velocity = gamma if gamma_velocity is None else gamma_velocity

    def forward(self, x):
        v = torch.zeros_like(x)
        for f in self.units:
            v = self.gamma_velocity * v + (1 - self.gamma) * f(x)
            x = x + v
        return x


def relative(a: torch.Tensor, ref: torch.Tensor) -> float | None:
    e = ((a - ref).norm() / ref.norm()).item()
    return e if math.isfinite(e) else None


def factory_refuses(gamma: float, units: int) -> bool:
    """Whether ``build_model`` refuses ``reversible=true`` for stages of ``units`` momentum units at ``gamma``."""
    from horesnet import build_model
    from horesnet.errors import ConfigError

    try:
        build_model(block="momentum", stages=[units + 1] * 3, depth=None, width=0.25, placement="full_preact",
                    coefficient=gamma, reversible=True)
    except ConfigError:
        return True
    return False


def networks(units: list[nn.Module], gamma: float, dtype) -> dict[str, nn.Module]:
    from momentumnet import MomentumNet

    from horesnet import get_scheme
    from horesnet.nn.multistep import MultistepBlock

    def fresh():
        return copy.deepcopy(units)

    plain = MultistepBlock(get_scheme("momentum"), fresh(), value=gamma)
    rev = MultistepBlock(get_scheme("momentum"), fresh(), value=gamma)
    rev.set_reversible(True)
    nets = {"loop": PlainLoop(fresh(), gamma), "loop_gamma_effective": PlainLoop(fresh(), gamma,
                                                                                    effective_gamma(gamma)),
            "horesnet_autograd": plain, "horesnet_reversible": rev,
            "momentumnet_backprop": MomentumNet(fresh(), gamma=gamma, use_backprop=True),
            "momentumnet_memory_free": MomentumNet(fresh(), gamma=gamma, use_backprop=False)}
    return {k: m.to(dtype=dtype).train() for k, m in nets.items()}


def unit_modules(name: str, net: nn.Module) -> list[nn.Module]:
    return list(net.functions) if name.startswith("momentumnet") else list(net.units)


def step(name: str, net: nn.Module, x: torch.Tensor, w: torch.Tensor) -> dict:
    """One training forward and backward: the output, the gradients (input, then every unit parameter in order) and
    the BatchNorm buffers afterwards."""
    units = unit_modules(name, net)
    params = [p for u in units for p in u.parameters()]
    assert len(params) == len(list(net.parameters())), name  # nothing but the units' parameters is trained
    xi = x.clone().requires_grad_()
    with warnings.catch_warnings():  # horesnet's warning about its rebuilt input: measured instead
        warnings.simplefilter("ignore", UserWarning)
        out = net(xi)
        (out * w).sum().backward()
    grad = torch.cat([xi.grad.flatten(), *(p.grad.flatten() for p in params)])
    bns = [m for u in units for m in u.modules() if isinstance(m, nn.BatchNorm2d)]
    return {"out": out.detach(), "grad": grad,
            "num_batches_tracked": sorted({int(m.num_batches_tracked) for m in bns}),
            "running_mean": torch.cat([m.running_mean.flatten() for m in bns])}


def cell(gamma: float, units: int, dtype, refused: bool) -> dict:
    from horesnet.nn.multistep import REVERSIBLE_TOLERANCE
    from horesnet.schemes.stage import FLOAT32_EPS

    torch.manual_seed(0)  # the order of benchmarks.multistep.accuracy: units, then input, then loss weights
    functions = residual_functions(units)
    nets = networks(functions, gamma, dtype)
    x = torch.randn(4, 4, 8, 8, dtype=dtype)
    w = torch.randn_like(x)
    res = {k: step(k, m, x, w) for k, m in nets.items()}
    dt = str(dtype).replace("torch.", "")
    block = nets["horesnet_reversible"]
    predicted = block.predicted_inversion_error(FLOAT32_EPS)
    loop = res["loop"]

    def g(a, b):
        return relative(res[a]["grad"], res[b]["grad"])

    row = {"dtype": dt, "gamma": gamma, "depth": units, "tolerance": TOLERANCE[dt],
           "momentumnet_gamma_effective": effective_gamma(gamma),
           "momentumnet_gamma_differs": effective_gamma(gamma) != gamma,
           "predicted_error_float32": predicted, "predicted_tolerance": REVERSIBLE_TOLERANCE,
           "predicted_safe": predicted <= REVERSIBLE_TOLERANCE,
           "factory_refuses_reversible": refused,
           "safe_depth": block.coefficients.safe_inversion_depth(REVERSIBLE_TOLERANCE, FLOAT32_EPS),
           "predicted_error_own_dtype": block.predicted_inversion_error(torch.finfo(dtype).eps / 2),
           "horesnet_reversible_vs_autograd": g("horesnet_reversible", "horesnet_autograd"),
           "horesnet_reversible_vs_loop": g("horesnet_reversible", "loop"),
           "horesnet_autograd_vs_loop": g("horesnet_autograd", "loop"),
           "momentumnet_memory_free_vs_loop": g("momentumnet_memory_free", "loop"),
           "momentumnet_memory_free_vs_loop_gamma_effective": g("momentumnet_memory_free", "loop_gamma_effective"),
           "momentumnet_memory_free_vs_backprop": g("momentumnet_memory_free", "momentumnet_backprop"),
           "momentumnet_backprop_vs_loop": g("momentumnet_backprop", "loop"),
           "loop_gamma_effective_vs_loop": g("loop_gamma_effective", "loop"),
           "horesnet_measured_input_error": block.last_reconstruction_error,
           "forward_error_vs_loop": {k: relative(r["out"], loop["out"]) for k, r in res.items() if k != "loop"},
           "num_batches_tracked": {k: r["num_batches_tracked"] for k, r in res.items()},
           "running_mean_error_vs_loop": {k: relative(r["running_mean"], loop["running_mean"])
                                          for k, r in res.items() if k != "loop"}}
    # momentumnet's forward runs at its effective gamma, its backward's adjoint at the given one: its error against
    # the nearer of the two loops is the most favourable reading
    both = [e for e in (row["momentumnet_memory_free_vs_loop"], row["momentumnet_memory_free_vs_loop_gamma_effective"])
            if e is not None]
    row["momentumnet_memory_free_vs_nearer_loop"] = min(both) if both else None
    tol = TOLERANCE[dt]
    for name, key in (("horesnet", "horesnet_reversible_vs_autograd"),
                      ("momentumnet", "momentumnet_memory_free_vs_loop"),
                      ("momentumnet_nearer_loop", "momentumnet_memory_free_vs_nearer_loop")):
        row[f"{name}_within_tolerance"] = row[key] is not None and row[key] <= tol
    return row


def summary(rows: list[dict]) -> dict:
    """The issue's claim, cell by cell: where momentumnet fails and horesnet predicts safe, horesnet is within
    tolerance (its reversible gradients against its autograd ones; against the loop too)."""
    out = {}
    for dt in ("float32", "float64", "all"):
        sel = [r for r in rows if dt in ("all", r["dtype"])]
        claim = [r for r in sel if r["predicted_safe"] and not r["momentumnet_within_tolerance"]]
        claim_nearer = [r for r in sel if r["predicted_safe"] and not r["momentumnet_nearer_loop_within_tolerance"]]
        held = [r for r in claim if r["horesnet_within_tolerance"]]
        held_loop = [r for r in claim if r["horesnet_reversible_vs_loop"] is not None
                     and r["horesnet_reversible_vs_loop"] <= r["tolerance"]]
        out[dt] = {"cells": len(sel), "predicted_safe": sum(r["predicted_safe"] for r in sel),
                   "momentumnet_fails": sum(not r["momentumnet_within_tolerance"] for r in sel),
                   "horesnet_fails": sum(not r["horesnet_within_tolerance"] for r in sel),
                   "claim_cells": len(claim), "claim_holds": len(held), "claim_holds_against_loop": len(held_loop),
                   "claim_cells_momentumnet_against_nearer_loop": len(claim_nearer),
                   "claim_holds_momentumnet_against_nearer_loop": sum(r["horesnet_within_tolerance"]
                                                                      for r in claim_nearer),
                   "claim_fails_at": [(r["gamma"], r["depth"], r["horesnet_reversible_vs_autograd"])
                                      for r in claim if r not in held],
                   "horesnet_fails_where_predicted_safe": [
                       (r["gamma"], r["depth"], r["horesnet_reversible_vs_autograd"])
                       for r in sel if r["predicted_safe"] and not r["horesnet_within_tolerance"]]}
    return out


def prediction_vs_measured(rows: list[dict]) -> dict:
    """The predicted reconstruction error (at the cell's own dtype) against the measured error of the rebuilt stage
    input: the ratio's range over the cells where the measurement is finite, and the cells where the prediction is
    below it (the first-order model leaves out the units' Jacobians)."""
    out = {}
    for dt in ("float32", "float64"):
        sel = [r for r in rows if r["dtype"] == dt and r["horesnet_measured_input_error"] is not None
               and math.isfinite(r["horesnet_measured_input_error"]) and r["horesnet_measured_input_error"] > 0]
        ratio = [r["predicted_error_own_dtype"] / r["horesnet_measured_input_error"] for r in sel]
        below = [(r["gamma"], r["depth"], r["predicted_error_own_dtype"], r["horesnet_measured_input_error"])
                 for r, q in zip(sel, ratio, strict=True) if q < 1]
        small = [q for r, q in zip(sel, ratio, strict=True) if r["horesnet_measured_input_error"] <= 1e-2]
        out[dt] = {"cells": len(sel), "ratio_min": min(ratio, default=None), "ratio_max": max(ratio, default=None),
                   "ratio_range_where_measured_at_most_1e-2": [min(small, default=None), max(small, default=None)],
                   "prediction_below_measured": below}
    return out


def tolerance_choice(rows: list[dict], gradient_tolerance: float = 1e-5) -> dict:
    """The float32 tolerances on the predicted error whose predicted-safe cells are exactly the cells with a measured
    gradient error <= ``gradient_tolerance``: [largest prediction of such a cell, smallest prediction of any other)."""
    def accurate(r):
        return r["horesnet_reversible_vs_autograd"] is not None and r["horesnet_reversible_vs_autograd"] <= \
            gradient_tolerance

    sel = [r for r in rows if r["dtype"] == "float32"]
    lo = max((r["predicted_error_float32"] for r in sel if accurate(r)), default=0.0)
    hi = min((r["predicted_error_float32"] for r in sel if not accurate(r)), default=math.inf)
    return {"gradient_tolerance": gradient_tolerance, "separating_from": lo, "separating_below": hi,
            "separable": lo < hi, "tolerance_used": rows[0]["predicted_tolerance"] if rows else None,
            "tolerance_used_separates": bool(rows) and lo <= rows[0]["predicted_tolerance"] < hi}


def cross_check(rows: list[dict], gammas, depths) -> dict:
    """``benchmarks.multistep.accuracy`` on the same grid: its reversible-vs-autograd errors against ours."""
    ref = horesnet_accuracy(gammas, depths, DTYPES, torch.device("cpu"))
    diffs = []
    for r in ref:
        mine = next(m for m in rows if (m["dtype"], m["gamma"], m["depth"]) == (r["dtype"], r["gamma"], r["units"]))
        a, b = mine["horesnet_reversible_vs_autograd"], r["relative_error"]
        diffs.append(0.0 if a == b else math.inf if a is None or b is None else abs(a - b) / max(abs(b), 1e-300))
    agrees = all(next(m for m in rows if (m["dtype"], m["gamma"], m["depth"]) == (r["dtype"], r["gamma"], r["units"]))
                 ["predicted_error_own_dtype"] == r["predicted_error"] for r in ref)
    return {"cells": len(ref), "identical": sum(d == 0 for d in diffs), "max_relative_difference": max(diffs),
            "predicted_error_agrees": agrees,
            **({} if agrees else {"predicted_error_note": "benchmarks/multistep.py computes its own prediction "
                                  "(eps * gamma^-T, the former model), not MultistepBlock.predicted_inversion_error"})}


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["cells"]
    gammas = sorted({r["gamma"] for r in rows})
    depths = sorted({r["depth"] for r in rows})
    colours = {g: f"C{i}" for i, g in enumerate(gammas)}
    style = {"float32": ("-", "o"), "float64": ("--", "s")}
    top, floor = 10.0, 1e-17
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.5), sharey=True)
    panels = (("horesnet_reversible_vs_autograd", "horesnet reversible=true vs its autograd"),
              ("momentumnet_memory_free_vs_loop", "momentumnet 0.10 use_backprop=False vs plain loop"))
    lo, hi = min(depths) * 0.8, max(depths) * 1.25
    for ax, (key, title) in zip(axes, panels, strict=True):
        for g in gammas:
            for dt, (ls, mk) in style.items():
                sel = sorted((r for r in rows if r["gamma"] == g and r["dtype"] == dt), key=lambda r: r["depth"])
                if not sel:
                    continue
                ys = [top if r[key] is None else max(r[key], floor) for r in sel]
                ax.plot([r["depth"] for r in sel], ys, ls=ls, marker=mk, color=colours[g], label=f"γ={g}, {dt}")
                for r in sel:
                    if r[key] is None:
                        ax.plot(r["depth"], top, "x", color=colours[g], ms=10)
        ax.axhline(1e-5, color="k", lw=0.8, ls=":")
        ax.axhline(1e-10, color="k", lw=0.8, ls="-.")
        ax.text(lo * 1.05, 1e-5 * 1.6, "tolerance float32 1e-5", fontsize=8)
        ax.text(lo * 1.05, 1e-10 * 1.6, "tolerance float64 1e-10", fontsize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(floor, top * 3)
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.set_xlabel("units in the stage (depth T)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    ax = axes[0]
    for g in gammas:  # horesnet's predicted safe region: T <= safe depth (float32 prediction, REVERSIBLE_TOLERANCE)
        safe = next(r["safe_depth"] for r in rows if r["gamma"] == g)
        if safe >= lo:
            ax.axvspan(lo, min(safe, hi), color=colours[g], alpha=0.08, lw=0)
        if safe <= hi:
            ax.axvline(safe, color=colours[g], lw=0.8, ls=":")
        where = f"safe T ≤ {safe:g}" + (" (left of the grid)" if safe < lo else "")
        ax.plot([], [], color=colours[g], alpha=0.3, lw=8, label=f"γ={g}: predicted {where}")
    axes[0].set_ylabel("relative gradient error ‖g − g_ref‖ / ‖g_ref‖")
    for ax in axes:
        ax.plot([], [], "kx", label="not finite (diverged)")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
    fig.suptitle(f"Reversible gradient fidelity, one stage of T BN-tanh-conv units (torch {report['torch']}, "
                 f"momentumnet {report['momentumnet']}); shaded: horesnet's predicted safe depth per γ", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}", flush=True)


def fe(v) -> str:
    return "diverged" if v is None else f"{v:.1e}"


def markdown(report: dict) -> str:
    out = ["| dtype | γ | T | predicted (fp32) | predicted / measured rebuilt input (own dtype) "
           "| horesnet rev vs autograd | horesnet rev vs loop | momentumnet free vs loop "
           "| momentumnet free vs loop(γ_eff) | BN batches tracked (hor rev / mn free) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["cells"]:
        nbt = r["num_batches_tracked"]
        out.append(f"| {r['dtype']} | {r['gamma']} | {r['depth']} | {r['predicted_error_float32']:.1e} "
                   f"{'safe' if r['predicted_safe'] else 'unsafe'} | {r['predicted_error_own_dtype']:.1e} / "
                   f"{fe(r['horesnet_measured_input_error'])} | "
                   f"{fe(r['horesnet_reversible_vs_autograd'])} | {fe(r['horesnet_reversible_vs_loop'])} | "
                   f"{fe(r['momentumnet_memory_free_vs_loop'])} | "
                   f"{fe(r['momentumnet_memory_free_vs_loop_gamma_effective'])} | "
                   f"{nbt['horesnet_reversible']} / {nbt['momentumnet_memory_free']} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.momentumnet_fidelity", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (gamma 0.5, 0.9; T 4, 10)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help=f"JSON path (default {OUT.relative_to(h.REPO)})")
    ap.add_argument("--plot", help="PNG path (default: the JSON path with .png)")
    args = ap.parse_args(argv)
    momentumnet = momentumnet_or_exit()
    torch.set_num_threads(args.threads)
    gammas, depths = ((0.5, 0.9), (4, 10)) if args.quick else (GAMMAS, DEPTHS)
    out = Path(args.out) if args.out else (OUT.with_name("momentumnet_fidelity-quick.json") if args.quick else OUT)
    report = {"benchmark": "momentumnet_fidelity", **h.environment(torch.device("cpu")),
              "momentumnet": momentumnet.__version__, "platform": platform.platform(),
              "network": "one stage of T units BN2d(4)-tanh-conv3x3(4,4), conv weights N(0, 0.01), input (4,4,8,8), "
                         "loss sum(out * w), training mode",
              "tolerance": TOLERANCE}
    refused = {(g, t): factory_refuses(g, t) for g in gammas for t in depths}
    rows = []
    for dtype in DTYPES:
        for g in gammas:
            for t in depths:
                r = cell(g, t, dtype, refused[(g, t)])
                rows.append(r)
                print(f"{r['dtype']} gamma={g} T={t} ({'safe' if r['predicted_safe'] else 'unsafe'}): horesnet "
                      f"{fe(r['horesnet_reversible_vs_autograd'])}, momentumnet "
                      f"{fe(r['momentumnet_memory_free_vs_loop'])} (at its gamma "
                      f"{fe(r['momentumnet_memory_free_vs_loop_gamma_effective'])})", flush=True)
    report["cells"] = rows
    report["factory_agrees_with_prediction"] = all(r["factory_refuses_reversible"] != r["predicted_safe"] for r in rows)
    report["summary"] = summary(rows)
    report["prediction_vs_measured_input"] = prediction_vs_measured(rows)
    report["tolerance_choice"] = tolerance_choice(rows)
    report["exact_rep_round_trip"] = exact_rep_round_trip()
    report["cross_check_benchmarks_multistep"] = cross_check(rows, gammas, depths)
    h.write_json(report, out)
    plot(report, Path(args.plot) if args.plot else out.with_suffix(".png"))
    print(markdown(report))
    for dt, s in report["summary"].items():
        print(f"{dt}: claim cells (momentumnet fails, horesnet predicts safe) {s['claim_cells']}, horesnet within "
              f"tolerance in {s['claim_holds']}; fails at {s['claim_fails_at']}")
    for dt, s in report["prediction_vs_measured_input"].items():
        print(f"{dt}: predicted / measured rebuilt-input error {h.fmt(s['ratio_min'], '.2g')}..."
              f"{h.fmt(s['ratio_max'], '.2g')} (where measured <= 1e-2: "
              f"{'...'.join(h.fmt(v, '.2g') for v in s['ratio_range_where_measured_at_most_1e-2'])}); prediction below "
              f"the measurement at {s['prediction_below_measured']}")
    t = report["tolerance_choice"]
    print(f"float32 tolerances separating gradient error <= 1e-5: [{t['separating_from']:.2g}, "
          f"{t['separating_below']:.2g}) (used {t['tolerance_used']:g}: {t['tolerance_used_separates']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
