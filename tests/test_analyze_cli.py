"""Tests of ``python -m horesnet.analyze``: every study from a trained checkpoint, ``study=paths`` from a config
alone, W&B offline logging, and clean failures on bad input.

Tiny checkpoints are trained in-process (synthetic data, width 0.25, one epoch). The real command-line runs (all
studies, W&B offline, a missing checkpoint) start together in the background as soon as the first checkpoint
exists; cheaper cases call ``horesnet.analyze.main`` in-process. Outputs are read back with the csv/json modules.
Expected values come from the layout rule and hand-computed path polynomials (an Euler net of n units has C(n, k)
paths of length k; an RK4 block has 1 + 4z + 3z^2 + 2z^3 + z^4), not from the analysis code.
"""

from __future__ import annotations

import csv
import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from horesnet.analyze import main
from horesnet.cli.compose import compose
from horesnet.training.run import run_fit

from . import wandb_offline
from ._cli_helpers import cli_env, run_cli

STUDY_TABLES = ("lesion", "lesion_random", "reorder", "paths", "effective", "responses", "refinement", "robustness")
SMALL = ["limit=64", "samples_per_length=4", "effective_images=8", "ks=[1,2]", "trials=2", "swaps=[1]"]


def train(run_dir: Path, depth: int) -> Path:
    cfg = compose("fit", ["data=synthetic", f"depth={depth}", "width=0.25", "trainer.max_epochs=1", "logger=csv",
                          "data.limit_train=64", "data.limit_val=32", "data.limit_test=32",
                          "trainer.enable_progress_bar=false"])
    run_fit(cfg, run_dir=run_dir)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return ckpt


class Runs:
    """The trained checkpoints and the background command-line runs (futures), by name."""

    def __init__(self, base: Path):
        self.base = base
        self.ckpt14 = train(base / "run14", 14)
        home = base / "home"
        home.mkdir()
        env = cli_env(home)
        jobs = {
            "all": [f"ckpt={self.ckpt14}", "study=all", *SMALL, "wandb=disabled"],
            "wandb": [f"ckpt={self.ckpt14}", "study='paths,refinement'", *SMALL, "wandb=offline",
                      f"out={base / 'wb'}"],
            "missing": [f"ckpt={base / 'nope' / 'last.ckpt'}", "study=lesion", "wandb=disabled"],
        }
        self.pool = ThreadPoolExecutor(max_workers=len(jobs))
        self.futures = {name: self.pool.submit(run_cli, "horesnet.analyze", args, base, env, 240)
                        for name, args in jobs.items()}
        self.ckpt8 = train(base / "run8", 8)  # while the command-line runs go on

    def result(self, name: str) -> dict:
        res = self.futures[name].result()
        assert not res["timed_out"], f"{name}: timed out\n{res['stderr'][-2000:]}"
        return res


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    r = Runs(tmp_path_factory.mktemp("analyze_cli"))
    yield r
    r.pool.shutdown(wait=True)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_clean_failure(rc: int, out: str, err: str, *needles: str) -> None:
    assert rc == 2, f"rc={rc}\nstdout:{out[-2000:]}\nstderr:{err[-3000:]}"
    assert "Traceback" not in out + err, err[-3000:]
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one clear message, got:\n{err}"
    assert lines[0].startswith("horesnet.analyze: error:"), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} missing from: {lines[0]}"


# --------------------------------------------------------------------------------------------------------------
# Every study from a checkpoint
# --------------------------------------------------------------------------------------------------------------

def test_all_studies_from_a_checkpoint(runs):
    res = runs.result("all")
    assert res["rc"] == 0, res["stderr"][-3000:]
    assert "Traceback" not in res["stderr"]
    out = runs.ckpt14.parent.parent / "analysis"  # default: <run folder>/analysis
    # depth 14 holds one non-entry block per stage: no two blocks can swap, so reorder is skipped at once, said so,
    # and writes nothing (every Kendall tau would be 1)
    assert "skipped reorder: no two non-entry blocks share a stage" in res["stdout"]
    assert not (out / "reorder.csv").exists()
    for name in (n for n in STUDY_TABLES if n != "reorder"):
        for ext in ("csv", "json", "png"):
            assert (out / f"{name}.{ext}").is_file(), f"{name}.{ext} missing in {out}"
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        rows = read_csv(out / f"{name}.csv")
        assert len(json.loads((out / f"{name}.json").read_text())) == len(rows) > 0, name
    # depth 14: 2 units per stage, each an Euler block of one unit; the first of each stage is the entry
    units = [f"s{s}.b{b}.u1" for s in (1, 2, 3) for b in (1, 2)]
    lesion = read_csv(out / "lesion.csv")
    assert [r["address"] for r in lesion] == units
    assert [r["entry"] for r in lesion] == ["True", "False"] * 3
    paths = read_csv(out / "paths.csv")
    assert [(int(r["length"]), int(r["count"])) for r in paths] == [(k, math.comb(6, k)) for k in range(7)]
    lesion_random = read_csv(out / "lesion_random.csv")
    assert sorted((int(r["k"]), int(r["trial"])) for r in lesion_random) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    for r in lesion_random:
        assert len(r["deleted"].split()) == int(r["k"])
        assert set(r["deleted"].split()) <= set(units[1::2])
    effective = read_csv(out / "effective.csv")
    assert [(int(r["length"]), int(r["paths"]), int(r["samples"])) for r in effective] == \
        [(k, math.comb(6, k), 4) for k in range(7)]
    assert len(read_csv(out / "responses.csv")) == 1 + 2 * 6  # stem + two 3x3 convs per basic unit
    refinement = read_csv(out / "refinement.csv")
    assert [r["address"] for r in refinement] == [u.rsplit(".", 1)[0] for u in units]
    robustness = read_csv(out / "robustness.csv")
    assert [float(r["sigma"]) for r in robustness] == [0.0, 0.02, 0.05, 0.1, 0.2, 0.3]  # analyze.yaml default
    # three independent evaluations of the intact network on the same 64 images agree
    intact = float(lesion[0]["intact_error"])
    assert float(refinement[-1]["error"]) == pytest.approx(intact, abs=1e-6)
    assert float(robustness[0]["error"]) == pytest.approx(intact, abs=1e-6)
    assert float(lesion[0]["intact_loss"]) == pytest.approx(float(refinement[-1]["loss"]), abs=1e-5)
    # files hold accuracies and error rates as fractions in [0, 1] (docs/analysis.md, "Units"), 64 images: k/64
    rates = [float(r[c]) for rows, cols in ((lesion, ("error", "intact_error")), (lesion_random, ("error",)),
                                            (refinement, ("accuracy", "error")), (robustness, ("accuracy", "error")))
             for r in rows for c in cols]
    assert all(0 <= v <= 1 and (64 * v) == pytest.approx(round(64 * v), abs=1e-6) for v in rates), rates
    assert all(-1 <= float(r["delta_error"]) <= 1 for r in lesion)
    assert [float(r["accuracy"]) + float(r["error"]) for r in robustness] == pytest.approx([1.0] * len(robustness))


def test_all_studies_on_the_smallest_net(runs, capsys):
    """Depth 8 has one (entry) unit per stage: nothing is eligible for random deletion or reordering. study=all
    still finishes: what does not apply to this network is skipped, and said so."""
    out = runs.base / "all8"
    rc = main([f"ckpt={runs.ckpt8}", "study=all", *SMALL, "wandb=disabled", f"out={out}"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-3000:]
    for name in STUDY_TABLES:
        assert (out / f"{name}.csv").is_file() or f"skipped {name}:" in captured.out, name
    assert "skipped lesion_random:" in captured.out


def test_paths_without_a_checkpoint(runs, capsys):
    out = runs.base / "paths"
    rc = main(["study=paths", "block=rk4", "depth=56", "wandb=disabled", f"out={out}"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-3000:]
    assert "rk4-56" in captured.out
    for ext in ("csv", "json", "png"):
        assert (out / f"paths.{ext}").is_file()
    rk4 = [1, 4, 3, 2, 1]
    stage = [1]
    for p in ([1, 1], rk4, rk4):  # depth 56: 9 units per stage = Euler entry + two rk4 blocks
        stage = [sum(stage[i] * p[k - i] for i in range(len(stage)) if 0 <= k - i < len(p))
                 for k in range(len(stage) + len(p) - 1)]
    net = [1]
    for _ in range(3):
        net = [sum(net[i] * stage[k - i] for i in range(len(net)) if 0 <= k - i < len(stage))
               for k in range(len(net) + len(stage) - 1)]
    rows = read_csv(out / "paths.csv")
    assert [int(r["length"]) for r in rows] == list(range(28))
    assert [int(r["count"]) for r in rows] == net
    assert sum(net) == (2 * 11 * 11) ** 3
    assert json.loads((out / "paths.json").read_text()) == [{"length": k, "count": c} for k, c in enumerate(net)]


def test_wandb_offline_run_under_the_output_folder(runs):
    res = runs.result("wandb")
    assert res["rc"] == 0, res["stderr"][-3000:]
    out = runs.base / "wb"
    assert (out / "paths.csv").is_file() and (out / "refinement.csv").is_file()
    offline = sorted((out / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, f"expected one offline W&B run under {out / 'wandb'}"
    assert not list((out / "wandb").glob("run-*")), "an online run was started"
    logged = wandb_offline.read_run(offline[0])
    assert logged["run"]["job_type"] == "analysis"
    history = {k: v for row in logged["history"] for k, v in row.items()}
    for name, rows, cols in (("paths", 7, 2), ("refinement", 6, 7)):  # depth 14: lengths 0..6, six blocks
        assert history.get(f"{name}/table/_type") == "table-file", sorted(history)
        assert (history[f"{name}/table/nrows"], history[f"{name}/table/ncols"]) == (rows, cols)
        assert history.get(f"{name}/plot/_type") == "image-file", sorted(history)


# --------------------------------------------------------------------------------------------------------------
# Bad input: exit status 2 and one clear line, no traceback
# --------------------------------------------------------------------------------------------------------------

def test_missing_checkpoint_in_a_subprocess(runs):
    res = runs.result("missing")
    assert_clean_failure(res["rc"], res["stdout"], res["stderr"], "nope", "no such file")


@pytest.mark.parametrize("how", ["glob", "two_keys"])
def test_two_checkpoints_are_refused_not_one_silently_analysed(runs, tmp_path, capsys, how):
    """A glob naming two sweep members (the shell expands it to two bare paths) or ckpt= given twice: exit 2
    naming both, nothing written."""
    first, second = runs.ckpt8.parent.parent, runs.ckpt14.parent.parent
    argv = [str(first), str(second)] if how == "glob" else [f"ckpt={runs.ckpt8}", f"ckpt={runs.ckpt14}"]
    rc = main([*argv, "study=paths", "wandb=disabled", f"out={tmp_path / 'out'}"])
    captured = capsys.readouterr()
    assert_clean_failure(rc, captured.out, captured.err, "takes one checkpoint", "got 2")
    assert str(first.name) in captured.err and str(second.name) in captured.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["missing", "garbage", "unknown_study", "lesion_without_ckpt"])
def test_bad_input(case, runs, tmp_path, capsys):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"this is not a checkpoint\x00\x01\x02")
    argv, needles = {
        "missing": ([f"ckpt={tmp_path / 'missing.ckpt'}", "study=lesion"], ["missing.ckpt"]),
        "garbage": ([f"ckpt={garbage}", "study=lesion"], ["garbage.ckpt"]),
        "unknown_study": ([f"ckpt={runs.ckpt14}", "study=lesions"], ["lesions", "lesion_random"]),
        "lesion_without_ckpt": (["study=lesion"], ["ckpt"]),
    }[case]
    rc = main([*argv, "wandb=disabled", f"out={tmp_path / 'out'}"])
    captured = capsys.readouterr()
    assert_clean_failure(rc, captured.out, captured.err, *needles)
    assert not (tmp_path / "out").exists(), "a failed analysis should not leave an output folder"


def test_an_interrupted_analysis_keeps_what_it_finished_and_resumes(runs, capsys, monkeypatch):
    """Each study is written as soon as it is done; an interruption keeps those, the same command then runs only
    the rest, and fresh=true redoes everything."""
    from horesnet.analysis import get_study

    out = runs.base / "resume"
    args = [f"ckpt={runs.ckpt14}", "study=[paths,responses,refinement]", *SMALL, "wandb=disabled", f"out={out}"]
    refinement = get_study("refinement")

    def interrupted(model, data, options):
        raise KeyboardInterrupt
    monkeypatch.setitem(refinement.__dict__, "compute", interrupted)  # a frozen dataclass: patched in its dict
    assert main(args) == 130
    capsys.readouterr()
    assert sorted(p.name for p in out.glob("*.csv")) == ["paths.csv", "responses.csv"]
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.csv")}
    monkeypatch.undo()
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "kept paths, responses" in text and "done refinement" in text and "done paths" not in text
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.csv") if p.name in stamps} == stamps
    assert main([*args, "fresh=true"]) == 0
    assert "done paths" in capsys.readouterr().out


def test_a_resumed_analysis_redoes_what_an_older_horesnet_wrote_in_percent(runs, capsys):
    """A folder whose manifest entries predate records_version 2 holds percent: resuming over it recomputes those
    studies in fractions (and says so) instead of keeping them beside new fractions; studies without rates (paths)
    are kept."""
    from horesnet.analysis import progress

    out = runs.base / "old_units"
    args = [f"ckpt={runs.ckpt8}", "study=[paths,refinement]", "limit=64", "wandb=disabled", f"out={out}"]
    assert main(args) == 0
    capsys.readouterr()
    fresh = read_csv(out / "refinement.csv")
    manifest = json.loads((out / progress.MANIFEST).read_text())
    assert {e["records_version"] for e in manifest["studies"].values()} == {progress.RECORDS_VERSION} == {2}
    # what an older horesnet left: the same tables in percent, manifest entries without records_version
    with open(out / "refinement.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fresh[0]))
        writer.writeheader()
        writer.writerows({**r, "accuracy": 100 * float(r["accuracy"]), "error": 100 * float(r["error"])}
                         for r in fresh)
    for entry in manifest["studies"].values():
        del entry["records_version"]
    (out / progress.MANIFEST).write_text(json.dumps(manifest))
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "kept paths" in text and "redoing refinement:" in text and "percent" in text, text
    assert "done refinement" in text and "done paths" not in text
    assert read_csv(out / "refinement.csv") == fresh  # fractions again, not percent kept
    manifest = json.loads((out / progress.MANIFEST).read_text())
    assert manifest["studies"]["refinement"]["records_version"] == 2
    # a study of the old folder not asked for this time is named, not silently left in percent
    manifest["studies"]["refinement"].pop("records_version")
    (out / progress.MANIFEST).write_text(json.dumps(manifest))
    assert main([*args[:1], "study=paths", *args[2:]]) == 0
    assert "note: refinement in" in capsys.readouterr().out


def test_figures_state_split_and_image_count_and_tables_carry_no_float_noise(runs, tmp_path, monkeypatch):
    """Every data-driven figure's title names the dataset, split and number of images; tables are rounded to 10
    significant digits (1 - 0.172 is written 0.828, not 0.8280000000000001)."""
    from horesnet.analysis import common, style

    titles, save = {}, style.save

    def saving(fig, path):
        titles[path.name] = " ".join(t for t in [fig._suptitle.get_text() if fig._suptitle else ""]
                                     + [ax.get_title() for ax in fig.axes] if t)
        return save(fig, path)

    monkeypatch.setattr(style, "save", saving)
    out = tmp_path / "out"
    assert main([f"ckpt={runs.ckpt8}", "study=refinement", "limit=64", "split=val", "wandb=disabled",
                 f"out={out}"]) == 0
    # limit=64 of the 128 validation images: exactly 64 evaluated (the last batch was not cut at the limit before)
    assert titles == {"refinement.png": "euler-8 (synthetic val split, 64 images) iterative refinement"}, titles
    assert 1 - 0.172 == 0.8280000000000001 and 1 - 1697 / 2000 - 0.19 == -0.038500000000000034  # the float noise
    common.write_table([{"error": 1 - 0.172, "delta_error": 1 - 1697 / 2000 - 0.19, "name": "x", "n": 3}],
                       tmp_path / "t", "lesion")
    assert (tmp_path / "t" / "lesion.csv").read_text().splitlines()[1] == "0.828,-0.0385,x,3"
    assert json.loads((tmp_path / "t" / "lesion.json").read_text()) == [{"error": 0.828, "delta_error": -0.0385,
                                                                         "name": "x", "n": 3}]
