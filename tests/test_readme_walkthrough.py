"""The newcomer's walk of README's "From a sweep to its analysis", run verbatim: the commands between the
``<!-- walkthrough -->`` markers, one by one in bash, in an empty folder, as a user without a W&B key would.

Expected values are independent of the code: the network's path count from the midpoint tableau by hand, the residual
scale (1 + 0 + 1)/3 of a depth-20 midpoint stage, the units per stage from depth = 6n + 2, the registries' names in
the help texts, and a list of third-party console noise that must not appear.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from ._cli_helpers import cli_env

README = Path(__file__).resolve().parent.parent / "README.md"

#: Console text that only third-party libraries print (warnings, adverts, Lightning's information lines).
NOISE = ["site-packages", "Warning:", "warnings.warn", "wandb: WARNING", "Tip:", "litlogger", "GPU available",
         "TPU available", "Total Flops", "exists and is not empty", "is deprecated", "Traceback",
         "LOCAL_RANK", "Loading `train_dataloader`"]


def walkthrough() -> list[str]:
    text = README.read_text()
    match = re.search(r"<!-- walkthrough -->\s*```bash\n(.*?)```\s*<!-- /walkthrough -->", text, re.S)
    assert match, "README lost its walkthrough section (the <!-- walkthrough --> markers)"
    return [line for line in match.group(1).splitlines() if line.strip() and not line.startswith("#")]


#: Commands run in this process (their words still expanded by bash, as typed), since CI time is short; the
#: Python warnings they raise are recorded under the interpreter's default filters, i.e. what a terminal would show.
#: The sweep runs as a real subprocess: its whole console is checked.
IN_PROCESS = ("horesnet.compare", "horesnet.info", "horesnet.analyze", "horesnet.fit --help")
DEFAULT_FILTERS = [("default", DeprecationWarning, "__main__"), ("ignore", DeprecationWarning, None),
                   ("ignore", PendingDeprecationWarning, None), ("ignore", ImportWarning, None),
                   ("ignore", ResourceWarning, None)]


def shell_words(line: str, cwd: Path, env: dict) -> list[str]:
    """The argument vector bash makes of ``line`` (globs, quotes): what the program would receive."""
    proc = subprocess.run(["bash", "-c", "printf '%s\\0' " + line], cwd=cwd, env=env, capture_output=True,
                          text=True, check=True)
    return proc.stdout.split("\0")[:-1]


def in_process(words: list[str], cwd: Path) -> dict:
    import contextlib
    import importlib
    import io

    module, args = words[2], words[3:]
    out, err, argv, here = io.StringIO(), io.StringIO(), sys.argv, Path.cwd()
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        for action, category, mod in DEFAULT_FILTERS:
            warnings.filterwarnings(action, category=category, module=mod or "")
        try:
            os.chdir(cwd)
            sys.argv = [module, *args]
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                main = importlib.import_module(module).main
                rc = main() if module == "horesnet.fit" else main(args)
        except SystemExit as exc:
            rc = exc.code
        finally:
            sys.argv = argv
            os.chdir(here)
    shown = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    return {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue() + shown}


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    base = tmp_path_factory.mktemp("walk")
    (base / "home").mkdir()
    env = cli_env(home=base / "home")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # `python`: this venv
    results = []
    for line in walkthrough():
        words = shell_words(line, base, env)
        assert words[:2] == ["python", "-m"], line
        if " ".join(words[2:4]) in IN_PROCESS or words[2] in IN_PROCESS:
            res = in_process(words, base)
        else:
            proc = subprocess.run(["bash", "-c", line], cwd=base, env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=240)
            res = {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
        results.append({"line": line, **res})
        if res["rc"] != 0:
            break
    return base, results


def _one(results, start: str) -> dict:
    return next(r for r in results if r["line"].startswith(start))


def test_every_command_succeeds_without_third_party_noise(walk):
    _, results = walk
    assert len(results) == len(walkthrough()) >= 7
    for r in results:
        assert r["rc"] == 0, f"{r['line']}\n{r['stderr'][-3000:]}"
        for noise in NOISE:
            assert noise not in r["stdout"] + r["stderr"], f"{noise!r} on the console of: {r['line']}"


def test_the_sweep_writes_every_artefact_into_each_run_folder(walk):
    base, results = walk
    members = sorted(p for p in (base / "multirun" / "walk").iterdir() if p.is_dir() and p.name != "comparison")
    assert [(re.search(r"block=(\w+)", m.name)[1], re.search(r"seed=(\d)", m.name)[1]) for m in members] == \
        [("euler", "0"), ("euler", "1"), ("midpoint", "0"), ("midpoint", "1")]
    for m in members:
        for name in ("fit.log", "metrics.csv", "summary.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt",
                     ".hydra/config.yaml"):
            assert (m / name).is_file(), f"{name} missing in {m.name}"
        assert any((m / "wandb").glob("offline-run-*")), m.name  # no API key: W&B went offline by itself
        assert json.loads((m / "summary.json").read_text())["status"] == "finished"
        log = (m / "fit.log").read_text()
        assert "horesnet.fit: training" in log and "epoch 1/1: val acc" in log and "test  acc1" in log
        assert "GPU available" in log  # Lightning's lines are kept, in the log rather than on the console
    sweep = _one(results, "python -m horesnet.fit -m")
    # the banner: depth 20 = 6n + 2 gives 3 units per stage; midpoint's residual weights are h*b = 0, 1 after an
    # Euler entry unit (1): (1 + 0 + 1) / 3
    assert sweep["stdout"].count("horesnet.fit: training") == 4
    assert "stage 1: 3 units = euler* + midpoint" in sweep["stdout"]
    assert "residual    scale 0.6667" in sweep["stdout"] and "residual    scale 1\n" in sweep["stdout"]
    assert "compare them: python -m horesnet.compare multirun/walk" in sweep["stdout"]


def test_compare_counts_seeds_and_analyze_takes_the_member_folder(walk):
    base, _ = walk
    with open(base / "multirun" / "walk" / "comparison" / "comparison.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["block"], r["seeds"]) for r in rows) == [("euler", "2"), ("midpoint", "2")]
    out = next((base / "multirun" / "walk").glob("block=midpoint,*seed=0*")) / "analysis"
    with open(out / "lesion.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 9  # 3 units per stage
    with open(out / "paths.csv", newline="") as f:
        counts = [int(r["count"]) for r in csv.DictReader(f)]
    # per stage: an Euler entry block (1 + z) and one midpoint block (1 + z + z^2); three stages
    stage = [1, 2, 2, 1]  # (1 + z)(1 + z + z^2)
    poly = [1]
    for _ in range(3):
        poly = [sum(poly[i] * stage[k - i] for i in range(len(poly)) if 0 <= k - i < len(stage))
                for k in range(len(poly) + len(stage) - 1)]
    assert counts == poly and sum(counts) == 6 ** 3
    assert set(json.loads((out / "analysis.json").read_text())["studies"]) == {"lesion", "paths"}


def test_help_of_every_entry_point_lists_the_registries(walk):
    from horesnet.analysis import list_studies
    from horesnet.data.registry import list_datasets
    from horesnet.models import list_blocks
    from horesnet.nn import list_placements, list_units

    _, results = walk
    fit, info = _one(results, "python -m horesnet.fit --help"), _one(results, "python -m horesnet.info --help")
    analyze = _one(results, "python -m horesnet.analyze --help")
    compare = _one(results, "python -m horesnet.compare --help")
    for name in [*list_blocks(), *list_units(), *list_placements(), *list_datasets()]:
        assert name in fit["stdout"], name
    for name in [*list_blocks(), *list_units()]:
        assert name in info["stdout"], name
    for name in list_studies():
        assert f"\n  {name} " in analyze["stdout"], name
    for key in ("out=", "allow_unfair=", "wandb=", "wandb_project="):  # every key of compare's schema
        assert f"\n  {key}" in compare["stdout"], key
    assert "usage" not in compare["stderr"]
