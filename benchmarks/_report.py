"""Report of the throughput benchmark: environment, per-cell results, ratios against targets, JSON and Markdown."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch
from _memory import FIXED_MMAP_ENV
from _timing import step_time
from _variants import MB, MEM_TARGET, REPO, STEP_TARGET, VARIANTS, make_model


def git_commit() -> dict:
    def git(*a):
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ratio(a, b):
    return a / b if a is not None and b else None


def paired_ratio(rounds: list[list[dict]], ref_rounds: list[list[dict]]) -> float | None:
    """Median of step-by-step ratios (k-th step of a round against the reference's k-th; both clean)."""
    ratios = [a["s"] / b["s"] for ra, rb in zip(rounds, ref_rounds, strict=True) for a, b in zip(ra, rb, strict=False)
              if not a["disturbed"] and not b["disturbed"]]
    return statistics.median(ratios) if ratios else None


def _le(value, target):
    return None if value is None or target is None else value <= target


def compute_ratios(results: dict, device: torch.device) -> list[dict]:
    peak_key = "cuda_max_allocated_bytes" if device.type == "cuda" else "peak_rss_bytes"
    rows = []
    for precision, by_variant in results.items():
        for variant, r in by_variant.items():
            ref = VARIANTS[variant][2]
            if ref is None or ref not in by_variant:
                continue
            q = by_variant[ref]
            mem, qmem = r.get("memory", {}), q.get("memory", {})
            per_round = [
                _ratio(statistics.median(s["s"] for s in a), statistics.median(s["s"] for s in b))
                for a, b in zip(r["train_steps"], q["train_steps"], strict=True)
            ]
            row = {
                "variant": variant, "reference": ref, "precision": precision,
                "train_step_ratio_paired": paired_ratio(r["train_steps"], q["train_steps"]),
                "eval_step_ratio_paired": paired_ratio(r["eval_steps"], q["eval_steps"]),
                "train_step_ratio": _ratio(r["train_step_s"], q["train_step_s"]),
                "eval_step_ratio": _ratio(r["eval_step_s"], q["eval_step_s"]),
                "train_step_ratio_per_round_all_steps": per_round,
                "saved_activation_ratio": _ratio(mem.get("saved_bytes"), qmem.get("saved_bytes")),
                "peak_memory_ratio": _ratio(mem.get(peak_key), qmem.get(peak_key)),
                "peak_memory_metric": peak_key,
                "peak_rss_step_delta_ratio": _ratio(mem.get("peak_rss_step_delta_bytes"),
                                                    qmem.get("peak_rss_step_delta_bytes")),
                "peak_rss_fixed_mmap_ratio": _ratio(mem.get("peak_rss_fixed_mmap_bytes"),
                                                    qmem.get("peak_rss_fixed_mmap_bytes")),
            }
            step_target = STEP_TARGET.get(variant)
            row["targets"] = {"train_step_ratio_max": step_target, "memory_ratio_max": MEM_TARGET}
            row["pass"] = {
                "train_step": _le(row["train_step_ratio"], step_target),
                "saved_activation": _le(row["saved_activation_ratio"], MEM_TARGET),
                "peak_memory": _le(row["peak_memory_ratio"], MEM_TARGET),
                "peak_rss_fixed_mmap": _le(row["peak_rss_fixed_mmap_ratio"], MEM_TARGET),
            }
            rows.append(row)
    return rows


def _f(v, fmt):
    return "–" if v is None else format(v, fmt)


def _flag(ok):
    return "" if ok is None else (" ✓" if ok else " ✗")


def markdown(report: dict) -> str:
    cuda = report["device"].startswith("cuda")
    peak_name = "peak CUDA MB" if cuda else "peak RSS MB"
    peak_key = "cuda_max_allocated_bytes" if cuda else "peak_rss_bytes"
    ratios = {(r["precision"], r["variant"]): r for r in report["ratios"]}
    lines = [
        f"Throughput on {report['device_name']} ({report['device']}), torch {report['torch']}, "
        f"{report['threads']} threads, batch {report['batch']}, {report['steps']} timed steps x "
        f"{report['rounds']} interleaved rounds (median), {report['date']}, commit "
        f"{(report['git'].get('commit') or '?')[:10]}{'+dirty' if report['git'].get('dirty') else ''}",
        "",
        "| variant | precision | train img/s | eval img/s | vs | train ratio | eval ratio | saved act MB | "
        f"{peak_name} | act ratio | peak ratio |" + ("" if cuda else " RSS fixed-mmap MB | fixed-mmap ratio |"),
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|" + ("" if cuda else "---:|---:|"),
    ]
    for precision, by_variant in report["results"].items():
        for variant, r in by_variant.items():
            rr = ratios.get((precision, variant), {})
            mem = r.get("memory", {})
            ok = rr.get("pass", {})
            fixed = mem.get("peak_rss_fixed_mmap_bytes")
            lines.append(
                f"| {variant} | {precision} | {r['train_img_s']:.1f} | {r['eval_img_s']:.1f} | "
                f"{rr.get('reference', '')} | {_f(rr.get('train_step_ratio'), '.3f')}{_flag(ok.get('train_step'))} | "
                f"{_f(rr.get('eval_step_ratio'), '.3f')} | "
                f"{_f(mem.get('saved_bytes') and mem['saved_bytes'] * MB, '.1f')} | "
                f"{_f(mem.get(peak_key) and mem[peak_key] * MB, '.1f')} | "
                f"{_f(rr.get('saved_activation_ratio'), '.3f')}{_flag(ok.get('saved_activation'))} | "
                f"{_f(rr.get('peak_memory_ratio'), '.3f')}{_flag(ok.get('peak_memory'))} |"
                + ("" if cuda else f" {_f(fixed and fixed * MB, '.1f')} | "
                                   f"{_f(rr.get('peak_rss_fixed_mmap_ratio'), '.3f')}"
                                   f"{_flag(ok.get('peak_rss_fixed_mmap'))} |")
            )
    lines += ["", f"Targets: train-step ratio <= {max(STEP_TARGET.values())} (euler56 vs baseline56, midpoint56 and "
              f"rk4_56 vs euler56, rk8_92 vs euler92); saved-activation and peak-memory ratios <= {MEM_TARGET}. "
              "✓ pass, ✗ miss."]
    if not cuda:
        lines.append("Peak RSS (glibc defaults, median of the repeats) includes the torch/horesnet runtime (~0.35 GB) "
                     "and glibc heap fragmentation, which varies from run to run; RSS fixed-mmap is one child with "
                     f"{next(iter(FIXED_MMAP_ENV))}={next(iter(FIXED_MMAP_ENV.values()))}, whose peak follows live "
                     "memory and is reproducible.")
    dirty = report["interference"]
    lines.append(f"CPU interference: {dirty['disturbed_steps']} of {dirty['timed_steps']} timed steps disturbed "
                 f"(other processes > {dirty['other_cpu_max']} CPU) and left out"
                 + (f"; too few clean steps, all steps used: {', '.join(dirty['cells_using_all_steps'])}"
                    if dirty["cells_using_all_steps"] else "") + ".")
    return "\n".join(lines) + "\n"


def build_report(args, device: torch.device, raw: dict, memory: dict, profiles: dict, rounds_info: list[dict],
                 timing_s: float, t_start: float) -> dict:
    """The JSON report: environment, settings, per-cell step times and memory, ratios and pass flags."""
    cells = [(v, p) for p in args.precisions for v in args.variants]
    results: dict = {}
    all_steps_cells, n_steps, n_bad = [], 0, 0
    for v, p in cells:
        r = raw[(v, p)]
        train, train_clean, train_n = step_time(r["train"])
        ev, eval_clean, eval_n = step_time(r["eval"])
        n_steps += train_n + eval_n
        n_bad += train_n - train_clean + eval_n - eval_clean
        for kind, clean, n in (("train", train_clean, train_n), ("eval", eval_clean, eval_n)):
            if clean < max(3, n // 4) and clean != n:
                all_steps_cells.append(f"{v}/{p}/{kind}")
        results.setdefault(p, {})[v] = {
            "params": sum(t.numel() for t in make_model(v).parameters()),
            "train_step_s": train, "eval_step_s": ev,
            "train_img_s": args.batch / train, "eval_img_s": args.batch / ev,
            "train_clean_steps": train_clean, "eval_clean_steps": eval_clean,
            "train_steps": r["train"], "eval_steps": r["eval"], "quiet_wait_s": r["quiet_wait_s"],
            "memory": memory.get((v, p), {}),
        }
    report = {
        "benchmark": "throughput",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "git": git_commit(),
        "batch": args.batch, "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds,
        "interleave": args.interleave, "extra_steps": args.extra_steps,
        "memory_repeats": args.memory_repeats, "quick": args.quick,
        "timing_wall_s": timing_s, "total_wall_s": time.perf_counter() - t_start,
        "rounds_info": rounds_info,
        "interference": {"other_cpu_max": args.other_cpu_max, "timed_steps": n_steps, "disturbed_steps": n_bad,
                         "cells_using_all_steps": all_steps_cells},
        "targets": {"train_step_ratio_max": STEP_TARGET, "memory_ratio_max": MEM_TARGET},
        "results": results,
        "ratios": compute_ratios(results, device),
    }
    if profiles:
        report["profile_ms_per_step_by_group"] = profiles
    report["all_pass"] = all(ok is not False for r in report["ratios"] for ok in r["pass"].values())
    return report


def write_outputs(report: dict, out: Path, args) -> None:
    """Write the JSON report to ``out``, print the Markdown table and write it to ``--markdown`` if given."""
    out.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    print()
    print(table)
    print(f"wrote {out}")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(table)
        print(f"wrote {args.markdown}")
