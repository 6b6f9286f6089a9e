"""The built wheel carries the Hydra configs, and the CLIs work from that installed (non-editable) copy."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_configs_and_cli_runs_from_it(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(ROOT)],
        capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    wheel = next(tmp_path.glob("horesnet-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for cfg in ("fit.yaml", "info.yaml", "optim/he.yaml", "trainer/ddp.yaml", "logger/wandb.yaml"):
        assert f"horesnet/configs/{cfg}" in names, cfg
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-m", "horesnet.info", "block=rk4", "depth=56"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "853,018" in run.stdout
    # the data group has no YAML files: each dataset's config node comes from the dataset registry
    data = subprocess.run([sys.executable, "-c", "from horesnet.cli.compose import compose; "
                           "d = compose('fit', ['data=fashion_mnist']).data; print(d.name, d.channels, d.val_size)"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert data.returncode == 0, data.stderr
    assert data.stdout.split() == ["fashion_mnist", "1", "5000"]
    where = subprocess.run([sys.executable, "-c", "import horesnet; print(horesnet.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip().startswith(str(site)), where.stdout
