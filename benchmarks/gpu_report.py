"""JSON of the parts of ``benchmarks/gpu_check.sh``: pytest results, the fit's summary, the check's overview.

    python -m benchmarks.gpu_report junit TESTS.xml OUT.json     # pytest --junitxml -> per-test outcome JSON
    python -m benchmarks.gpu_report fit RUN_DIR OUT.json         # horesnet.fit summary.json -> time/epoch, accuracy
    python -m benchmarks.gpu_report overview RESULTS_DIR         # gpu_check.json: every part's status and files
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from ._harness import write_json


def junit(xml_path: Path) -> dict:
    """Counts and one record per test (outcome, seconds, skip/failure message) of a pytest ``--junitxml`` file."""
    if not xml_path.is_file():
        return {"status": "missing", "tests": []}
    tests = []
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        outcome, message = "passed", None
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (node.get("message") or node.text or "")[:2000]
                break
        tests.append({"name": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                      "seconds": float(case.get("time") or 0.0), "message": message})
    counts = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "error", "skipped")}
    status = "failed" if counts["failed"] or counts["error"] else "passed" if counts["passed"] else "skipped"
    return {"status": status, "counts": counts, "tests": tests}


def fit(run_dir: Path) -> dict:
    """Time per epoch, images/s and accuracies of the newest ``summary.json`` under ``run_dir``."""
    found = sorted(run_dir.rglob("summary.json"), key=lambda p: p.stat().st_mtime) if run_dir.is_dir() else []
    if not found:
        return {"status": "missing", "run_dir": str(run_dir)}
    s = json.loads(found[-1].read_text())
    epochs = s.get("epochs_done") or 0
    cfg = s.get("config", {})
    return {"status": s.get("status"), "summary": str(found[-1]), "block": cfg.get("block"), "depth": cfg.get("depth"),
            "data": cfg.get("data", {}).get("name"), "trainer": {k: cfg.get("trainer", {}).get(k) for k in
                                                               ("accelerator", "precision", "max_epochs")},
            "device": s.get("device"), "torch": s.get("torch"), "git_commit": s.get("git_commit"),
            "epochs_done": epochs, "train_time_s": s.get("train_time_s"), "wall_time_s": s.get("wall_time_s"),
            "train_time_per_epoch_s": s["train_time_s"] / epochs if epochs and s.get("train_time_s") else None,
            "images_per_sec_last_epoch": s.get("images_per_sec"),
            "test_acc1": s.get("test", {}).get("test/acc1"), "val_acc1": s.get("val", {}).get("val/acc1"),
            "test_loss": s.get("test", {}).get("test/loss")}


def overview(results: Path) -> dict:
    """gpu_check.json: the status of each part (from the ``*.rc`` files gpu_check.sh leaves) and its JSON files."""
    parts = {}
    for rc in sorted(results.glob("*.rc")):
        code = int(rc.read_text().strip() or -1)
        parts[rc.stem] = {"rc": code, "timed_out": code in (124, 137),
                          "seconds": float((results / f"{rc.stem}.seconds").read_text() or 0)
                          if (results / f"{rc.stem}.seconds").is_file() else None}
    files = sorted(p.name for p in results.glob("*.json") if p.name != "gpu_check.json")
    return {"benchmark": "gpu_check", "parts": parts, "files": files,
            "ok": bool(parts) and all(p["rc"] == 0 for p in parts.values())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_report", description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("junit", "fit", "overview"))
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path, nargs="?")
    args = ap.parse_args(argv)
    if args.what == "overview":
        write_json(overview(args.src), args.out or args.src / "gpu_check.json")
        return 0
    if args.out is None:
        ap.error(f"{args.what} needs OUT.json")
    write_json(junit(args.src) if args.what == "junit" else fit(args.src), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
