"""Every command line refuses bad input the same way: exit status 2, one paragraph that names the bad value (and
the valid choices where there is a list), no traceback, no new file or folder, and nothing it was pointed at
changed. The cases run through the real command lines (``python -m horesnet.<tool>``) in subprocesses, started
together in a small background pool when this module's first test runs.

Fixtures (a trained midpoint checkpoint, a crafted checkpoint whose pickle would run ``touch``, a truncated one,
bad ``summary.json`` files) are made once per module; a snapshot of them before and after the matrix proves
that no case changed them.
"""

from __future__ import annotations

import hashlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from ._cli_helpers import Evil, cli_env, run_cli
from ._training_helpers import CLI_TINY, fit

FIT = "horesnet.fit"
INFO = "horesnet.info"
ANALYZE = "horesnet.analyze"
COMPARE = "horesnet.compare"

# name -> (tool, arguments, words the message must contain). ``{x}`` is filled from the fixtures.
CASES = {
    # the model
    "block": (FIT, ["block=foo"], ["'foo'", "rk4", "midpoint"]),
    "depth": (FIT, ["depth=57"], ["57", "6n+2"]),
    "depth_huge": (FIT, ["depth=999998"], ["999998", "GiB"]),
    "depth_nearest": (FIT, ["depth=1000000"], ["1000000", "999998"]),
    "rk8_depth": (FIT, ["block=rk8", "depth=56"], ["rk8", "92"]),
    "learn_step": (FIT, ["learn_step=maybe"], ["learn_step", "'maybe'", "true or false"]),
    "tied": (FIT, ["tied=perhaps"], ["tied", "'perhaps'", "true or false"]),
    "strict_int": (FIT, ["strict=1"], ["strict", "true or false"]),
    "width": (FIT, ["width=0"], ["width=0", "> 0"]),
    "step_zero": (FIT, ["step=0"], ["step=0", "learn_step=true"]),
    "step_nan": (FIT, ["step=nan"], ["step=nan", "finite"]),
    "shortcut": (FIT, ["shortcut=D"], ["'D'", "'A'", "'plain'"]),
    "placement": (FIT, ["placement=sideways"], ["'sideways'", "'full_preact'"]),
    "inner": (FIT, ["inner=rk99"], ["'rk99'", "'rk4'"]),
    "entry": (FIT, ["entry=middle"], ["'middle'", "'scheme'"]),
    "stages": (FIT, ["stages=[1,2]"], ["stages", "3"]),
    "num_classes": (FIT, ["num_classes=5"], ["num_classes=5", "10"]),
    "in_channels": (FIT, ["in_channels=2"], ["in_channels=2", "3"]),
    "unknown_key": (FIT, ["foo=1"], ["'foo'", "depth"]),
    # speed options
    "compile": (FIT, ["compile=sometimes"], ["compile", "'sometimes'", "true or false"]),
    "compile_mode": (FIT, ["compile=true", "compile_mode=fastest"], ["'fastest'", "'max-autotune'"]),
    "grad_checkpointing": (FIT, ["grad_checkpointing=2"], ["grad_checkpointing", "true or false"]),
    "checkpoint_stages": (FIT, ["grad_checkpointing=true", "grad_checkpointing_stages=[1,4]"],
                          ["stages=[1, 4]", "from 1 to 3"]),
    "checkpoint_stages_type": (FIT, ["grad_checkpointing_stages=[one]"], ["grad_checkpointing_stages", "'one'"]),
    "checkpoint_stages_alone": (FIT, ["grad_checkpointing_stages=[1,2]"],
                                ["grad_checkpointing_stages=[1, 2]", "grad_checkpointing=true"]),
    # data
    "data": (FIT, ["data=nosuch"], ["nosuch", "cifar10"]),
    "data_classes": (FIT, ["data=cifar10", "data.num_classes=7"], ["data.num_classes=7", "10"]),
    "limit_zero": (FIT, ["data.limit_train=0"], ["data.limit_train=0", ">= 1"]),
    "limit_negative": (FIT, ["data.limit_train=-5"], ["data.limit_train=-5", ">= 1"]),
    "batch_size": (FIT, ["data.batch_size=0"], ["data.batch_size=0"]),
    "val_size": (FIT, ["data.val_size=700"], ["data.val_size=700", "640"]),
    "no_data": (FIT, ["data=cifar10", "data.root={empty}", "data.download=false"],
                ["{empty}", "cifar-10-python.tar.gz"]),
    # optimiser
    "lr_text": (FIT, ["optim.lr=abc"], ["optim.lr", "'abc'", "> 0"]),
    "lr_negative": (FIT, ["optim.lr=-0.1"], ["optim.lr=-0.1"]),
    "lr_inf": (FIT, ["optim.lr=inf"], ["optim.lr=inf", "finite"]),
    "optimizer": (FIT, ["optim.name=adam"], ["'adam'", "'sgd'", "'adamw'"]),
    "schedule": (FIT, ["optim.schedule=linear"], ["'linear'", "'cosine'"]),
    "momentum": (FIT, ["optim.momentum=1.5"], ["optim.momentum=1.5", "< 1"]),
    "milestones": (FIT, ["optim.milestones=[0.5,1.5]"], ["optim.milestones", "1.5"]),
    # trainer, logger, run
    "max_epochs_zero": (FIT, ["trainer.max_epochs=0"], ["trainer.max_epochs=0", ">= 1"]),
    "max_epochs_text": (FIT, ["trainer.max_epochs=abc"], ["trainer.max_epochs", "'abc'"]),
    "precision": (FIT, ["trainer.precision=fp8"], ["'fp8'", "'bf16-mixed'", "'32-true'"]),
    "accelerator": (FIT, ["trainer.accelerator=gpu"], ["trainer.accelerator='gpu'"]),
    "devices": (FIT, ["trainer.devices=0"], ["trainer.devices=0"]),
    "wandb_mode": (FIT, ["logger=wandb", "logger.wandb.mode=sometimes"], ["'sometimes'", "'offline'"]),
    "wandb_timeout": (FIT, ["logger=wandb", "logger.wandb.timeout=0"], ["logger.wandb.timeout=0"]),
    "seed": (FIT, ["seed=-1"], ["seed=-1"]),
    "stop_after": (FIT, ["stop_after_epoch=0"], ["stop_after_epoch=0"]),
    "divergence": (FIT, ["divergence.check_every=0"], ["divergence.check_every=0"]),
    "resume_missing": (FIT, ["resume={empty}/nothing.ckpt"], ["{empty}/nothing.ckpt"]),
    "resume_refused": (FIT, ["resume={run}", "optim.lr=0.05"], ["optim.lr", "0.1", "0.05"]),
    "resume_crafted": (FIT, ["resume={evil}"], ["{evil}", "refused", "weights_only"]),
    "resume_auto_crafted": (FIT, ["hydra.run.dir={evil_run}", "resume=auto"], ["{evil}", "refused"]),
    "weights_missing": (FIT, ["weights={empty}/none.pth"], ["weights=", "{empty}/none.pth", "does not exist"]),
    "weights_crafted": (FIT, ["weights={evil}"], ["weights=", "{evil}", "refused", "weights_only"]),
    "weights_not_torchvision": (FIT, ["weights={ckpt}"], ["weights=", "{ckpt}", "torchvision"]),
    "run_dir_unwritable": (FIT, ["hydra.run.dir=/proc/horesnet-run"], ["/proc/horesnet-run", "writable"]),
    "experiment": (FIT, ["experiment=nosuch"], ["'nosuch'", "he2015_resnet56"]),
    "nested_unknown": (FIT, ["+optim.foo=1"], ["'optim.foo'", "optim.lr"]),
    "stages_zero": (FIT, ["stages=[0,1,1]"], ["stages=[0, 1, 1]", ">= 1"]),
    "depth_text": (FIT, ["depth=abc"], ["depth='abc'"]),
    "arch": (FIT, ["arch=resnet"], ["'resnet'", "'imagenet'"]),
    "unit": (FIT, ["unit=triple"], ["'triple'", "'bottleneck'"]),
    "norm": (FIT, ["norm=layer"], ["'layer'", "'group'"]),
    "ode_method": (FIT, ["block=ode", "ode_method=euler2"], ["'euler2'", "'dopri5'"]),
    "ode_rtol": (FIT, ["block=ode", "ode_rtol=0"], ["ode_rtol=0"]),
    "plain_rk4": (FIT, ["depth=32", "block=rk4", "shortcut=plain"], ["shortcut='plain'", "'rk4'"]),
    "weight_decay": (FIT, ["optim.weight_decay=-1"], ["optim.weight_decay=-1", ">= 0"]),
    "pct_start": (FIT, ["optim=onecycle", "optim.pct_start=1"], ["optim.pct_start=1"]),
    "tags": (FIT, ["logger=wandb", "logger.wandb.tags=5"], ["logger.wandb.tags=5", "list of strings"]),
    "limit_batches": (FIT, ["trainer.limit_train_batches=-1"], ["limit_train_batches", "-1"]),
    "strategy": (FIT, ["trainer.strategy=nosuch"], ["trainer.strategy='nosuch'"]),
    "sweep_member": (FIT, ["-m", "block=euler,foo"], ["'foo'", "rk4"]),
    "sweep_without_m": (FIT, ["block=euler,midpoint"], ["-m"]),
    "seed_huge": (FIT, ["seed=4294967296"], ["seed=4294967296", "4294967295"]),
    "ode_rtol_tiny": (FIT, ["block=ode", "ode_rtol=1e-300"], ["ode_rtol=1e-300", "1e-08"]),
    "name_long": (FIT, ["name=" + "n" * 300], ["name=", "300 bytes", "255"]),
    "run_dir_long": (FIT, ["hydra.run.dir={empty}/" + "r" * 300], ["hydra.run.dir=", "300 bytes", "255"]),
    "run_dir_plusplus": (FIT, ["++hydra.run.dir=/proc/horesnet-pp"], ["/proc/horesnet-pp", "writable"]),
    "sweep_dir_file": (FIT, ["-m", "seed=0,1", "hydra.sweep.dir={sum_text}/summary.json"],
                       ["hydra.sweep.dir=", "summary.json", "existing file"]),
    "sweep_dir_unwritable": (FIT, ["-m", "seed=0,1", "hydra.sweep.dir=/proc/horesnet-sweep"],
                             ["/proc/horesnet-sweep", "writable"]),
    "sweep_dir_long": (FIT, ["-m", "seed=0,1", "hydra.sweep.dir=" + "s" * 300], ["hydra.sweep.dir=", "255"]),
    "compile_mode_alone": (FIT, ["compile_mode=max-autotune"], ["compile_mode='max-autotune'", "compile=true"]),
    "limit_train_batches_zero": (FIT, ["trainer.limit_train_batches=0"],
                                 ["trainer.limit_train_batches=0", "data.limit_train"]),
    "fast_dev_run": (FIT, ["+trainer.fast_dev_run=true"], ["trainer.fast_dev_run=True", "false"]),
    "scale_controls_single": (FIT, ["scale_controls=true"], ["scale_controls=true", "-m"]),
    # info
    "info_tied": (INFO, ["tied=perhaps"], ["tied", "'perhaps'"]),
    "info_huge": (INFO, ["depth=999998"], ["999998", "GiB"]),
    "info_list": (INFO, ["list=everything"], ["'everything'", "'schemes'"]),
    "info_image_size": (INFO, ["image_size=0"], ["image_size=0"]),
    "info_imagenet_depth": (INFO, ["arch=imagenet", "depth=51"], ["51", "50"]),
    "info_width": (INFO, ["width=abc"], ["width='abc'"]),
    "info_image_size_huge": (INFO, ["image_size=100000"], ["image_size=100000", "4096"]),
    "info_ode_image_size": (INFO, ["block=ode", "image_size=1024"], ["image_size=1024", "512"]),
    # analyze
    "analyze_limit_zero": (ANALYZE, ["ckpt={ckpt}", "limit=0"], ["limit=0", ">= 1"]),
    "analyze_limit_negative": (ANALYZE, ["ckpt={ckpt}", "limit=-5"], ["limit=-5"]),
    "analyze_block": (ANALYZE, ["ckpt={ckpt}", "block=heun", "study=paths"], ["block='heun'", "'midpoint'"]),
    "analyze_step": (ANALYZE, ["ckpt={ckpt}", "step=0.5", "study=paths"], ["step=0.5", "1.0"]),
    "analyze_missing": (ANALYZE, ["ckpt={empty}/none.ckpt"], ["{empty}/none.ckpt"]),
    "analyze_crafted": (ANALYZE, ["ckpt={evil}", "study=paths"], ["{evil}", "refused"]),
    "analyze_truncated": (ANALYZE, ["ckpt={trunc}", "study=paths"], ["{trunc}", "not a readable checkpoint"]),
    "analyze_study": (ANALYZE, ["ckpt={ckpt}", "study=nosuch"], ["'nosuch'", "'lesion'"]),
    "analyze_split": (ANALYZE, ["ckpt={ckpt}", "split=train"], ["'train'", "'test'", "'val'"]),
    "analyze_device": (ANALYZE, ["ckpt={ckpt}", "device=tpu", "study=paths"], ["device='tpu'", "'cpu'"]),
    "analyze_out": (ANALYZE, ["ckpt={ckpt}", "out=/proc/horesnet-out", "study=paths"], ["/proc/horesnet-out"]),
    "analyze_granularity": (ANALYZE, ["ckpt={ckpt}", "granularity=cell"], ["'cell'", "'block'"]),
    "analyze_sigmas": (ANALYZE, ["ckpt={ckpt}", "sigmas=[-1]"], ["sigmas=[-1]", ">= 0"]),
    "analyze_no_ckpt": (ANALYZE, ["study=lesion"], ["study='lesion'", "ckpt=PATH"]),
    "analyze_out_file": (ANALYZE, ["ckpt={ckpt}", "out={trunc}/x", "study=paths"], ["{trunc}", "existing file"]),
    # compare
    "compare_empty_object": (COMPARE, ["{sum_object}"], ["summary.json", "'status'"]),
    "compare_list": (COMPARE, ["{sum_list}"], ["summary.json", "list"]),
    "compare_not_json": (COMPARE, ["{sum_text}"], ["summary.json", "not a readable"]),
    "compare_missing": (COMPARE, ["{empty}/nowhere"], ["{empty}/nowhere"]),
    "compare_flag": (COMPARE, ["{run}", "allow_unfair=maybe"], ["allow_unfair", "'maybe'"]),
    "compare_out": (COMPARE, ["{run}", "out=/proc/horesnet-cmp"], ["/proc/horesnet-cmp", "writable"]),
    "compare_option": (COMPARE, ["{run}", "foo=1"], ["'foo'", "allow_unfair"]),
    "compare_no_runs": (COMPARE, ["{empty}"], ["{empty}", "no finished runs"]),
    "compare_out_long": (COMPARE, ["{run}", "out=" + "c" * 300], ["out=", "300 bytes", "255"]),
}

# fit cases run on tiny synthetic data unless they choose their own
_BASE = {FIT: CLI_TINY, INFO: [], ANALYZE: ["wandb=disabled"], COMPARE: []}


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def make_fixtures(base: Path) -> dict[str, str]:
    run = base / "run"
    fit(run, ["data=synthetic", "block=midpoint", "depth=20", "width=0.25", "logger=csv", "trainer.max_epochs=1",
              "data.limit_train=32", "data.limit_val=32", "data.limit_test=32", "trainer.enable_progress_bar=false"])
    ckpt = run / "checkpoints" / "last.ckpt"
    good = torch.load(ckpt, weights_only=True)
    evil = base / "evil" / "checkpoints" / "last.ckpt"
    evil.parent.mkdir(parents=True)
    good["hyper_parameters"]["model"]["block"] = Evil(base / "PWNED")
    torch.save(good, evil)
    trunc = base / "trunc.ckpt"
    trunc.write_bytes(ckpt.read_bytes()[:2000])
    sums = {}
    for name, text in (("object", "{}"), ("list", "[1, 2]"), ("text", "not json {")):
        d = base / f"summary_{name}"
        d.mkdir()
        (d / "summary.json").write_text(text)
        sums[f"sum_{name}"] = str(d)
    (base / "empty").mkdir()
    return {"run": str(run), "ckpt": str(ckpt), "evil": str(evil), "evil_run": str(evil.parent.parent),
            "trunc": str(trunc), "empty": str(base / "empty"),
            "marker": str(base / "PWNED"), **sums}


# These run as real ``python -m`` processes; the others in forked children of one warm process (tests/_cli_fork.py),
# which runs the same tool entry points and costs a tenth of the time.
REAL_PROCESS = ("learn_step", "depth_huge", "resume_crafted", "sweep_member", "info_huge", "analyze_crafted",
                "analyze_block", "compare_list")


class _Forked:
    def __init__(self, proc, results: Path, name: str):
        self.proc, self.results, self.name = proc, results, name

    def result(self):
        self.proc.wait(timeout=900)
        assert self.results.is_file(), f"the fork runner failed:\n{self.proc.stderr.read()[-3000:]}"
        return json.loads(self.results.read_text())[self.name]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    import subprocess

    base = tmp_path_factory.mktemp("matrix")
    fixtures = make_fixtures(base / "fixtures")
    before = _snapshot(base / "fixtures")
    env = cli_env(home=base / "home")
    jobs, futures = [], {}
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="matrix")
    for name, (tool, args, _) in CASES.items():
        cwd = base / "cwd" / name
        cwd.mkdir(parents=True)
        argv = [*_BASE[tool], *(a.format(**fixtures) for a in args)]
        if name in REAL_PROCESS:
            futures[name] = pool.submit(run_cli, tool, argv, cwd, env, 120)
        else:
            jobs.append({"name": name, "module": tool, "args": argv, "cwd": str(cwd), "env": env, "timeout": 120})
    (base / "out").mkdir()
    (base / "jobs.json").write_text(json.dumps(jobs))
    results = base / "out" / "results.json"
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "_cli_fork.py"), str(base / "jobs.json"),
                             str(results)], env=env, cwd=base, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    futures.update({job["name"]: _Forked(proc, results, job["name"]) for job in jobs})
    yield {"base": base, "fixtures": fixtures, "futures": futures, "before": before}
    pool.shutdown(wait=True, cancel_futures=True)
    proc.kill()


def test_the_matrix_is_broad():
    assert len(CASES) >= 40
    assert {tool for tool, _, _ in CASES.values()} == {FIT, INFO, ANALYZE, COMPARE}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_cleanly(matrix, case):
    tool, _, words = CASES[case]
    res = matrix["futures"][case].result()
    out, err = res["stdout"], res["stderr"]
    assert not res["timed_out"], f"{case}: the command hung"
    assert res["rc"] == 2, f"{case}: exit status {res['rc']}, expected 2\n{err[-3000:]}"
    assert "Traceback" not in err + out and 'File "' not in err, f"{case}: a traceback:\n{err[-3000:]}"
    lines = [line for line in err.strip().splitlines() if line.strip()]
    prefix = f"{tool}: error: "
    errors = [line for line in lines if line.startswith(prefix)]
    assert len(errors) == 1, f"{case}: expected one '{prefix}...' paragraph:\n{err[-3000:]}"
    assert "\n\n" not in err.strip(), f"{case}: the error should be one paragraph:\n{err}"
    message = errors[0]
    for word in words:
        word = word.format(**matrix["fixtures"])
        assert word in message, f"{case}: the message does not name {word!r}:\n{message}"
    cwd = matrix["base"] / "cwd" / case
    assert sorted(p.name for p in cwd.iterdir()) == [], f"{case}: left files behind: {list(cwd.rglob('*'))}"


def test_no_case_changed_its_inputs_or_ran_code(matrix):
    for future in matrix["futures"].values():
        future.result()
    assert not Path(matrix["fixtures"]["marker"]).exists(), "a crafted checkpoint executed code"
    assert _snapshot(matrix["base"] / "fixtures") == matrix["before"], "a refused command changed a file it was given"


def test_fixture_checkpoint_needs_no_allowlist(matrix):
    """horesnet's own checkpoints hold only tensors and plain containers: weights_only=True needs no allowlist."""
    ckpt = torch.load(matrix["fixtures"]["ckpt"], weights_only=True)
    assert ckpt["hyper_parameters"]["model"]["block"] == "midpoint"
    assert json.loads(json.dumps(ckpt["hyper_parameters"]))  # plain JSON-able containers
