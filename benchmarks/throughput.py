"""Training/eval throughput and memory of horesnet variants against a hand-written ResNet-56, in ONE interleaved run.

    python -m benchmarks.throughput --quick                       # smoke run: batch 16, 1 round
    python -m benchmarks.throughput                               # every suite, batch 128
    python -m benchmarks.throughput --suite compile --compile-variants euler56,rk4_56,rk8_92

Suites (``--suite``, comma list): ``throughput`` (baseline56, euler56, midpoint56, rk4_56, euler92, rk8_92 in fp32
and bf16+channels_last, plus rk8_92 with ``SchemeBlock.fused=False``), ``compile`` (``--compile-variants``
compiled and eager; the first call, i.e. the compile time, reported apart) and ``checkpointing`` (euler56 and
rk8_92 plain, with ``set_grad_checkpointing(True)`` and with stages 1-2 only), each in every selected precision.
Every selected cell takes part in the same rotated, step-by-step interleaved rounds. Method and targets:
docs/benchmarks_method.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import _harness as h
from . import _processes as procs
from .baseline_resnet import RESNET56_PARAMS, CifarResNet, resnet56
from .throughput_table import markdown, peak

VARIANTS = {"baseline56": (None, 56), "euler56": ("euler", 56), "midpoint56": ("midpoint", 56),
            "rk4_56": ("rk4", 56), "euler92": ("euler", 92), "rk8_92": ("rk8", 92)}
PRECISIONS = {"fp32": (None, False), "bf16cl": (torch.bfloat16, True)}  # autocast dtype, channels_last
SUITES = ("throughput", "compile", "checkpointing")
NUM_CLASSES = 10
STEP_TARGET, CKPT_STEP_TARGET, CKPT_MEMORY_TARGET = 1.03, 1.35, 0.5


def suite_cells(suites, compile_variants, variants, precisions) -> list[tuple[str, str, str]]:
    """(variant, precision, mode) of every selected suite, de-duplicated, kept to ``variants``/``precisions``."""
    cells = []
    if "throughput" in suites:
        cells += [(v, p, "eager") for p in PRECISIONS for v in VARIANTS]
        cells += [("rk8_92", p, "unfused") for p in PRECISIONS]
    if "compile" in suites:
        cells += [(v, p, m) for p in PRECISIONS for v in compile_variants for m in ("eager", "compiled")]
    if "checkpointing" in suites:
        cells += [(v, p, m) for p in PRECISIONS for v in ("euler56", "rk8_92") for m in ("eager", "ckpt", "ckpt12")]
    return [c for c in dict.fromkeys(cells) if c[0] in variants and c[1] in precisions]


def cell_name(cell) -> str:
    return "/".join(cell if cell[2] != "eager" else cell[:2])


def ratio_specs(cells) -> list[dict]:
    """The ratios the selected cells allow: (cell, reference, what is compared, target)."""
    have, specs = {cell_name(c) for c in cells}, []

    def add(group, a, b, kinds, target=None, memory_target=None):
        if a in have and b in have:
            specs.append({"group": group, "cell": a, "reference": b, "kinds": kinds, "target": target,
                          "memory_target": memory_target})

    pairs = (("euler56", "baseline56"), ("midpoint56", "euler56"), ("rk4_56", "euler56"), ("rk8_92", "euler92"))
    for p in PRECISIONS:
        for v, ref in pairs:
            add("scheme", f"{v}/{p}", f"{ref}/{p}", ("train", "eval"), STEP_TARGET)
        add("fused", f"rk8_92/{p}", f"rk8_92/{p}/unfused", ("train", "eval"))
    for p in PRECISIONS:
        for v, ref in pairs:  # both compiled: what the elementwise work costs once inductor fuses it
            add("compiled scheme", f"{v}/{p}/compiled", f"{ref}/{p}/compiled", ("train", "eval"), STEP_TARGET)
        for v in VARIANTS:
            add("compile", f"{v}/{p}/compiled", f"{v}/{p}", ("train", "eval"))
            for m in ("ckpt", "ckpt12"):
                add("checkpointing", f"{v}/{p}/{m}", f"{v}/{p}", ("train",), CKPT_STEP_TARGET, CKPT_MEMORY_TARGET)
    return specs


# ----------------------------------------------------------------------------------------------- one cell


class Bench:
    """One cell: model (built, converted, compiled or checkpointed as its mode says), SGD and a fixed batch."""

    def __init__(self, cell, batch: int, device: torch.device, tiny: bool = False):
        from horesnet import build_model, compile_model
        from horesnet.nn import SchemeBlock

        variant, precision, mode = cell
        torch.manual_seed(0)
        block, depth = VARIANTS[variant]
        self.device, (self.dtype, channels_last) = device, PRECISIONS[precision]
        if tiny:  # smoke size: depth 56 -> 32 (92 stays: rk8's least) at width 0.25, ResNet-8 baseline
            model = CifarResNet([1, 1, 1], NUM_CLASSES) if block is None else \
                build_model(block=block, depth={56: 32, 92: 92}[depth], num_classes=NUM_CLASSES, width=0.25)
        elif block is None:
            model = resnet56(NUM_CLASSES)
            assert sum(p.numel() for p in model.parameters()) == RESNET56_PARAMS
        else:
            model = build_model(block=block, depth=depth, num_classes=NUM_CLASSES)
        self.params = sum(p.numel() for p in model.parameters())
        model = model.to(device)
        self.x = torch.randn(batch, 3, 32, 32, device=device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.y = torch.randint(0, NUM_CLASSES, (batch,), device=device)
        if mode == "unfused":
            for m in model.modules():
                if isinstance(m, SchemeBlock):
                    m.fused = False
        if mode in ("ckpt", "ckpt12"):  # every stage / stages 1 and 2 (the largest activations)
            model.set_grad_checkpointing(True, stages=None if mode == "ckpt" else [1, 2])
        self.model = compile_model(model) if mode == "compiled" else model
        self.opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        self.kinds = ("train",) if mode.startswith("ckpt") else ("train", "eval")  # checkpointing changes only training

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def _mode(self, training: bool) -> None:
        """Switch train/eval only when it changes (the switch walks every module; training loops switch per epoch,
        and with ``--settle`` the untimed call before each timed one pays it)."""
        if self.model.training != training:
            self.model.train(training)

    def train(self):
        self._mode(True)
        self.opt.zero_grad(set_to_none=True)
        with self.autocast():
            loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()

    def eval(self):
        self._mode(False)
        with torch.no_grad(), self.autocast():
            self.model(self.x)

    def first_calls(self) -> dict:
        """Seconds of the first train and eval call (for a compiled cell: compilation included)."""
        out = {}
        for kind in self.kinds:
            t = time.perf_counter()
            getattr(self, kind)()
            h.sync(self.device)
            out[kind] = time.perf_counter() - t
        return out

    def memory(self, hooks: bool) -> dict:
        """One training step: bytes of the unique storages saved for backward (``saved_tensors_hooks``; not for
        compiled cells) and the step's peak allocation above what was allocated before it (CUDA:
        ``max_memory_allocated``; CPU: the profiler's memory events, ``_harness.cpu_peak_bytes``)."""
        saved: dict[int, int] = {}

        def pack(t):
            st = t.untyped_storage()
            saved[st.data_ptr()] = st.nbytes()
            return t

        cuda = self.device.type == "cuda"
        h.sync(self.device)
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            before = torch.cuda.memory_allocated(self.device)
        if hooks:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                self.train()
        else:
            self.train()
        h.sync(self.device)
        out = {"saved_bytes": sum(saved.values()), "saved_storages": len(saved)} if hooks else {}
        if not cuda:  # the whole step's worst moment, recomputed activations included (profiler memory events)
            out["cpu_step_peak_bytes"] = h.cpu_peak_bytes(self.train)
        if cuda:
            out["cuda_step_peak_bytes"] = torch.cuda.max_memory_allocated(self.device) - before
        return out


# ----------------------------------------------------------------------------------------------- report


def build_ratios(specs, results) -> list[dict]:
    rows = []
    for spec in specs:
        a, b = results[spec["cell"]], results[spec["reference"]]
        row = {**spec, "kinds": list(spec["kinds"])}
        for kind in spec["kinds"]:
            row[f"{kind}_ratio"] = a[kind]["median_s"] / b[kind]["median_s"]
            row[f"{kind}_ratio_paired"] = h.paired_ratio(a[kind]["rounds"], b[kind]["rounds"])
            row[f"{kind}_pass"] = h.verdict(row[f"{kind}_ratio"], spec["target"])
        sa, sb = a["memory"].get("saved_bytes"), b["memory"].get("saved_bytes")
        row["saved_activation_ratio"] = sa / sb if sa is not None and sb else None
        row["saved_activation_pass"] = h.verdict(row["saved_activation_ratio"], spec["memory_target"])
        ca, cb = peak(a["memory"]), peak(b["memory"])
        row["step_peak_ratio"] = ca / cb if ca is not None and cb else None
        row["step_peak_pass"] = h.verdict(row["step_peak_ratio"], spec["memory_target"])
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------- CLI


def _list(p, name, value, choices):
    values = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in values if v not in choices]
    if bad or not values:
        p.error(f"--{name}: unknown {', '.join(bad) or 'empty list'}; choose from {', '.join(choices)}")
    return values


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default=",".join(SUITES), help=f"comma list from {', '.join(SUITES)} (default all)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"keep cells of these: {', '.join(VARIANTS)}")
    p.add_argument("--precisions", default=",".join(PRECISIONS), help=f"keep cells of these: {', '.join(PRECISIONS)}")
    p.add_argument("--compile-variants", default="euler56,rk4_56", help="variants of the compile suite")
    p.add_argument("--quick", action="store_true", help="smoke run: batch 16, 2 steps, 1 round, no round warm-up")
    p.add_argument("--tiny", action="store_true", help="smoke-test models (depth 32/92, width 0.25; ResNet-8 baseline)")
    p.add_argument("--batch", type=int, help="batch size (128; --quick 16)")
    p.add_argument("--steps", type=int, help="timed passes per round (8; --quick 2)")
    p.add_argument("--rounds", type=int, help="interleaved rounds, order rotated (3; --quick 1)")
    p.add_argument("--warmup", type=int, help="untimed passes at the start of each round (1; --quick 0)")
    p.add_argument("--settle", type=int, default=1,
                   help="untimed steps of the same cell right before each timed one (default 1)")
    p.add_argument("--extra-steps", type=int, help="passes allowed to replace disturbed steps (steps // 2)")
    p.add_argument("--other-cpu-max", type=float, default=0.25, help="a step is disturbed above this (CPUs)")
    p.add_argument("--quiet-wait", type=float, help="s to wait for quiet after a disturbed step (30; --quick 3)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--out", help="JSON path (default benchmarks/results/throughput-<device>[-quick].json)")
    p.add_argument("--markdown", metavar="PATH", help="also write the Markdown tables to PATH")
    p.add_argument("--processes", type=int, default=1,
                   help="repeat the whole run in this many fresh processes and pool them (default 1)")
    p.add_argument("--build-order", choices=procs.BUILD_ORDERS, default="forward",
                   help="build the cells in listed or reversed order (--processes alternates it)")
    args = p.parse_args(argv)
    defaults = dict(batch=16, steps=2, rounds=1, warmup=0, quiet_wait=3.0) if args.quick else \
        dict(batch=128, steps=8, rounds=3, warmup=1, quiet_wait=30.0)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.extra_steps = args.steps // 2 if args.extra_steps is None else args.extra_steps
    args.suite = _list(p, "suite", args.suite, SUITES)
    args.variants = _list(p, "variants", args.variants, VARIANTS)
    args.precisions = _list(p, "precisions", args.precisions, PRECISIONS)
    args.compile_variants = _list(p, "compile-variants", args.compile_variants, VARIANTS)
    if args.settle < 0:
        p.error(f"--settle must be >= 0, got {args.settle}")
    for name in ("batch", "steps", "rounds", "threads", "processes"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    args.cells = suite_cells(args.suite, args.compile_variants, args.variants, args.precisions)
    if not args.cells:
        p.error("no cells left: the selected suites have no cell of these --variants/--precisions")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = h.pick_device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    cfg = torch._dynamo.config  # compiled models of one class share their forward's dynamo cache: room for all
    limit = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
    setattr(cfg, limit, max(getattr(cfg, limit), 4 * len(args.cells)))
    if args.processes > 1:
        return pooled_main(args, sys.argv[1:] if argv is None else list(argv))
    t0 = time.perf_counter()
    benches, first, memory, steppers = {}, {}, {}, {}
    build = args.cells if args.build_order == "forward" else args.cells[::-1]
    for cell in build:  # build, first call (compile), one memory step and one timed warm-up step per kind
        name = cell_name(cell)
        b = benches[name] = Bench(cell, args.batch, device, args.tiny)
        first[name] = b.first_calls()
        memory[name] = b.memory(hooks=cell[2] != "compiled")
        for kind in b.kinds:
            steppers[f"{name}:{kind}"] = h.Stepper(getattr(b, kind), device, args.settle)
        warm = {k: steppers[f"{name}:{k}"].step(args.other_cpu_max)["s"] for k in b.kinds}
        first[name]["warm"] = warm
        print(f"{name}: first call {', '.join(f'{k} {v:.1f} s' for k, v in first[name].items() if k != 'warm')}; "
              f"step {', '.join(f'{k} {v * 1e3:.0f} ms' for k, v in warm.items())}; saved "
              f"{h.fmt(memory[name].get('saved_bytes') and memory[name]['saved_bytes'] * h.MB, '.1f')} MB", flush=True)
    setup_s = time.perf_counter() - t0
    per_pass = sum(sum(f["warm"].values()) for f in first.values())
    estimate = args.rounds * (args.steps * (1 + args.settle) + args.warmup) * per_pass  # settle calls too
    print(f"setup {setup_s:.0f} s; estimated timed rounds {estimate / 60:.1f} min (one pass of all "
          f"{len(steppers)} steps {per_pass:.1f} s, without replaced disturbed steps); estimated total "
          f"{(setup_s + estimate) / 60:.1f} min", flush=True)
    rounds = h.interleave(steppers, args.rounds, args.steps, args.warmup, args.extra_steps, args.other_cpu_max,
                        args.quiet_wait)
    results, timed, disturbed, all_used = {}, 0, 0, []
    for cell in args.cells:
        name, b = cell_name(cell), benches[cell_name(cell)]
        r = results[name] = {"variant": cell[0], "precision": cell[1], "mode": cell[2], "params": b.params,
                             "first_call_s": first[name], "memory": memory[name]}
        for kind in b.kinds:
            s = h.summarise(rounds[f"{name}:{kind}"])
            r[kind] = {**s, "img_s": args.batch / s["median_s"], "rounds": rounds[f"{name}:{kind}"]}
            timed, disturbed = timed + s["steps"], disturbed + s["steps"] - s["clean_steps"]
            all_used += [f"{name}:{kind}"] if s["all_steps_used"] else []
    env = h.environment(device)
    report = {"benchmark": "throughput", **env, "suites": args.suite, "batch": args.batch, "steps": args.steps,
              "rounds": args.rounds, "build_order": args.build_order, "warmup": args.warmup, "settle": args.settle,
              "extra_steps": args.extra_steps, "quick": args.quick, "tiny": args.tiny,
              "setup_s": setup_s, "estimated_timing_s": estimate, "total_wall_s": time.perf_counter() - t0,
              "interference": {"other_cpu_max": args.other_cpu_max, "timed": timed, "disturbed": disturbed,
                               "all_steps_used": all_used},
              "targets": {"step_ratio_max": STEP_TARGET, "ckpt_step_ratio_max": CKPT_STEP_TARGET,
                          "ckpt_saved_activation_ratio_max": CKPT_MEMORY_TARGET},
              "results": results, "ratios": build_ratios(ratio_specs(args.cells), results)}
    return write_outputs(report, args)


def pooled_main(args, argv: list[str]) -> int:
    """``--processes K``: the same run in K fresh processes (build order alternating), pooled into one report."""
    child_argv = _strip(argv, ("--processes", "--out", "--markdown", "--build-order"))
    try:
        reports = procs.run_children("benchmarks.throughput", child_argv, args.processes)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    report = procs.pool_reports(reports, h.summarise)
    report["ratios"] = build_ratios(ratio_specs(args.cells), report["results"])
    procs.between_processes(report["ratios"], reports)
    return write_outputs(report, args)


def _strip(argv: list[str], options) -> list[str]:
    """``argv`` without ``options`` and their values (``--opt v`` and ``--opt=v``)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in options:
            skip = True
        elif not a.startswith(tuple(o + "=" for o in options)):
            out.append(a)
    return out


def write_outputs(report: dict, args) -> int:
    h.save_report(report, args.out, args.quick or args.tiny)
    table = markdown(report)
    print("\n" + table)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
