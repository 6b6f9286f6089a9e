"""The Markdown tables of a throughput report: cells (img/s, memory, first calls) and ratios (medians, paired,
between processes, targets). Written by ``python -m benchmarks.throughput`` (docs/benchmarks_method.md)."""

from __future__ import annotations

from . import _harness as h


def peak(memory: dict) -> int | None:
    """The step's peak allocation: CUDA's max_memory_allocated, else the CPU profiler's."""
    return memory.get("cuda_step_peak_bytes", memory.get("cpu_step_peak_bytes"))


def _processes_text(report: dict) -> str:
    k = report.get("processes", 1)
    return "" if k == 1 else f" in each of {k} fresh processes (cells built in alternating order)"


def _between(row: dict, kind: str) -> str:
    b = row.get("between", {}).get(kind)
    if b is None or b["geometric_mean"] is None:
        return "–"
    if b["ci_low"] is None:
        return f"{b['geometric_mean']:.3f} (n={b['n']}, not tested)"
    return (f"{b['geometric_mean']:.3f} [{b['ci_low']:.3f}, {b['ci_high']:.3f}] (n={b['n']})"
            + (f" {b['vs_target']}" if b["vs_target"] else ""))


def _flag(ok) -> str:
    return "" if ok is None else (" ✓" if ok else " ✗")


def markdown(report: dict) -> str:
    cuda = report["device"].startswith("cuda")
    lines = [f"Throughput on {report['device_name']} ({report['device']}), torch {report['torch']}, "
             f"{report['threads']} threads, batch {report['batch']}, {report['steps']} timed steps x "
             f"{report['rounds']} interleaved rounds{_processes_text(report)} (median of clean steps), "
             f"{report['date']}, commit "
             f"{(report['git']['commit'] or '?')[:10]}{'+dirty' if report['git']['dirty'] else ''}", "",
             "| cell | params | train img/s | eval img/s | saved act MB | "
             f"{'CUDA' if cuda else 'CPU'} step peak MB | first train / eval call s |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, r in report["results"].items():
        mem, first = r["memory"], r["first_call_s"]
        lines.append(f"| {name} | {r['params']:,} | {r['train']['img_s']:.1f} | "
                     f"{h.fmt(r.get('eval', {}).get('img_s'), '.1f')} | "
                     f"{h.fmt(mem.get('saved_bytes') and mem['saved_bytes'] * h.MB, '.1f')} |"
                     + f" {h.fmt(peak(mem) and peak(mem) * h.MB, '.1f')} |"
                     + f" {h.fmt(first.get('train'), '.1f')} / {h.fmt(first.get('eval'), '.1f')} |")
    many = report.get("processes", 1) > 1
    lines += ["", "| ratio | vs | train (paired) | eval (paired) | saved act | step peak | target |"
              + (" train between processes | eval between processes |" if many else ""),
              "|---|---|---|---|---|---|---|" + ("---|---|" if many else "")]
    for r in report["ratios"]:
        target = " ".join(x for x in (r["target"] and f"step <= {r['target']}",
                                      r["memory_target"] and f"act <= {r['memory_target']}") if x)
        lines.append(f"| {r['cell']} | {r['reference']} | {h.fmt(r['train_ratio'])}{_flag(r['train_pass'])} "
                     f"({h.fmt(r['train_ratio_paired'])}) | {h.fmt(r.get('eval_ratio'))}{_flag(r.get('eval_pass'))} "
                     f"({h.fmt(r.get('eval_ratio_paired'))}) | "
                     f"{h.fmt(r['saved_activation_ratio'])}{_flag(r['saved_activation_pass'])} | "
                     f"{h.fmt(r.get('step_peak_ratio'))}{_flag(r.get('step_peak_pass'))} | {target or '–'} |"
                     + ("".join(f" {_between(r, k)} |" for k in ("train", "eval")) if many else ""))
    if many:
        lines += ["", "Between processes: geometric mean of the per-process paired ratios [95% Student-t interval on "
                  "their logs] (processes); below/above/undecided: the whole interval under/over the target, or not."]
    i = report["interference"]
    lines += ["", f"Disturbed steps (other processes > {i['other_cpu_max']} CPU) left out: {i['disturbed']} of "
              f"{i['timed']}" + (f"; all steps used for {', '.join(i['all_steps_used'])}" if i["all_steps_used"]
                                 else "") + ". Targets are reported, never fatal."]
    return "\n".join(lines) + "\n"
