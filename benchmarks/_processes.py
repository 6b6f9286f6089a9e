"""One benchmark repeated in fresh processes, pooled (docs/benchmarks_method.md, "Between processes").

Where a process puts its tensors (heap layout, page alignment, cache sets) shifts a model's step time by a few
percent for the whole life of the process, the same way in every round: rounds inside one process cannot see it.
``run_children`` runs the same command line ``k`` times in fresh processes, building the cells in alternating
order; ``ratio_interval`` summarises one ratio measured once per process: geometric mean and a 95% Student-t
interval on the log ratios.
"""

from __future__ import annotations

import collections
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from scipy.stats import t as student_t

BUILD_ORDERS = ("forward", "reversed")


def build_order(process: int) -> str:
    """Process 0 builds the cells in their listed order, process 1 in reverse, and so on."""
    return BUILD_ORDERS[process % 2]


def run_children(module: str, argv: list[str], k: int, log=print) -> list[dict]:
    """Run ``python -m module *argv --processes 1 --build-order ... --out ...`` ``k`` times, one after the other;
    return the reports. A failing child raises ``RuntimeError`` with its exit status and output tail; its files
    live in a temporary folder that is removed either way."""
    reports = []
    with tempfile.TemporaryDirectory(prefix="horesnet-bench-") as tmp:
        for i in range(k):
            out = Path(tmp) / f"process-{i}.json"
            cmd = [sys.executable, "-m", module, *argv, "--processes", "1", "--build-order", build_order(i),
                   "--out", str(out)]
            log(f"process {i + 1}/{k} (build order {build_order(i)})", flush=True)
            with subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy()) as proc:
                tail = collections.deque(maxlen=200)
                for line in proc.stdout:  # progress as it comes: the rounds and the setup estimate
                    tail.append(line)
                    if line.startswith(("round ", "setup ")):
                        log(f"  {line.rstrip()}", flush=True)
            if proc.returncode != 0 or not out.is_file():
                raise RuntimeError(f"benchmark process {i + 1}/{k} failed (exit {proc.returncode}):\n"
                                   + "".join(tail)[-4000:])
            reports.append(json.loads(out.read_text()))
    return reports


def ratio_interval(ratios: list[float], level: float = 0.95) -> dict:
    """Geometric mean of per-process ratios with a Student-t interval on their logarithms (n - 1 degrees of
    freedom). Fewer than 3 processes: the mean only, interval "not tested"."""
    logs = [math.log(r) for r in ratios if r is not None and r > 0]
    n = len(logs)
    out = {"n": n, "geometric_mean": math.exp(statistics.fmean(logs)) if logs else None,
           "ci_low": None, "ci_high": None, "verdict": "not tested" if n < 3 else "tested"}
    if n >= 3:
        half = float(student_t.ppf((1 + level) / 2, n - 1)) * statistics.stdev(logs) / math.sqrt(n)
        mean = statistics.fmean(logs)
        out["ci_low"], out["ci_high"] = math.exp(mean - half), math.exp(mean + half)
    return out


def against_target(interval: dict, target: float | None) -> str | None:
    """``below`` / ``above`` when the whole interval lies under / over ``target``, ``undecided`` when it holds it,
    None without a target or an interval."""
    if target is None or interval["ci_low"] is None:
        return None
    if interval["ci_high"] <= target:
        return "below"
    return "above" if interval["ci_low"] > target else "undecided"


def pool_reports(reports: list[dict], summarise, kinds=("train", "eval")) -> dict:
    """One report from the processes' reports: every cell's rounds of all processes together (medians and paired
    ratios are then taken over them), the interference counts summed, memory and first-call times of process 1
    (each process's own are kept under ``per_process``). Ratios are left to the caller."""
    first = reports[0]
    pooled = {**first, "processes": len(reports), "build_order": [r["build_order"] for r in reports],
              "per_process": [{k: r[k] for k in ("date", "setup_s", "total_wall_s", "build_order")}
                              for r in reports],
              "total_wall_s": sum(r["total_wall_s"] for r in reports)}
    results = {}
    for name, cell in first["results"].items():
        merged = {**cell, "first_call_s_per_process": [r["results"][name]["first_call_s"] for r in reports],
                  "memory_per_process": [r["results"][name]["memory"] for r in reports]}
        for kind in kinds:
            if kind not in cell:
                continue
            rounds = [rnd for r in reports for rnd in r["results"][name][kind]["rounds"]]
            s = summarise(rounds)
            merged[kind] = {**s, "img_s": first["batch"] / s["median_s"], "rounds": rounds}
        results[name] = merged
    pooled["results"] = results
    inter = [r["interference"] for r in reports]
    pooled["interference"] = {"other_cpu_max": inter[0]["other_cpu_max"],
                              "timed": sum(i["timed"] for i in inter), "disturbed": sum(i["disturbed"] for i in inter),
                              "all_steps_used": sorted({c for i in inter for c in i["all_steps_used"]})}
    return pooled


def between_processes(rows: list[dict], reports: list[dict]) -> None:
    """Add to each pooled ratio row its per-process paired ratios and their ``ratio_interval`` (in place)."""
    for row in rows:
        mine = [next(x for x in r["ratios"] if x["cell"] == row["cell"] and x["reference"] == row["reference"])
                for r in reports]
        row["per_process"] = {kind: [x[f"{kind}_ratio_paired"] for x in mine] for kind in row["kinds"]}
        row["between"] = {kind: ratio_interval(row["per_process"][kind]) for kind in row["kinds"]}
        for kind in row["kinds"]:
            row["between"][kind]["vs_target"] = against_target(row["between"][kind], row["target"])
