"""A dataset added from outside the package: this test file is itself the plugin (docs/extending_datasets.md).

At import it registers ``my_data`` -- 2-channel 16x16 images of 3 classes, generated, with one option of its own,
``data.shift`` (0..7: the images are rolled that many pixels to the right). Nothing else in the repository names it:
the command line, the schema, Hydra's ``data=`` group and the data module must all accept it through the registry.
Expected values are facts of the toy set fixed here (its shapes, its classes, what a roll is) and of the files a
run writes (summary.json, the checkpoint's tensors).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from horesnet.data import DatasetFacts, register_dataset
from horesnet.spec import Option, Spec

if __package__:  # pytest (tests.test_extension_data); as a plugin file, only the registrations run
    from ._cli_helpers import cli_env, run_cli

THIS_FILE = Path(__file__).resolve()
CHANNELS, CLASSES, SIDE, N_TRAIN, N_TEST = 2, 3, 16, 120, 30


def load_my_data(root: Path, download: bool, verify: bool, options: dict):
    """Class k: a bright horizontal band (channel 0) and vertical band (channel 1) at offset 5k, plus noise,
    then every image rolled ``shift`` pixels to the right."""
    rng = np.random.default_rng(7)
    shift = options.get("shift", 0)

    def draw(n: int):
        y = np.arange(n) % CLASSES
        x = rng.normal(60, 20, (n, CHANNELS, SIDE, SIDE))
        for k in range(CLASSES):
            x[y == k, 0, 5 * k: 5 * k + 4, :] += 150
            x[y == k, 1, :, 5 * k: 5 * k + 4] += 150
        x = np.roll(np.clip(x, 0, 255).astype(np.uint8), shift, axis=3)
        return x, y.astype(np.int64)

    return (*draw(N_TRAIN), *draw(N_TEST))


register_dataset(
    "my_data", load_my_data, DatasetFacts(CHANNELS, CLASSES, N_TRAIN),
    description="Toy bands: 2-channel 16x16 images of 3 classes (a test of the plugin path)",
    defaults={"val_size": 24, "batch_size": 32, "eval_batch_size": 64},
    options={"data.shift": Option(0, Spec("int", low=0, high=7), "pixels the bands are rolled by")})


def test_the_real_cli_trains_on_the_plugin_dataset(tmp_path):
    """``python -m horesnet.fit plugins=[this file] data=my_data``: one real run in a fresh process."""
    result = run_cli("horesnet.fit", [f"plugins=[{THIS_FILE}]", "data=my_data", "data.shift=2", "depth=8",
                                      "width=0.25", "trainer.max_epochs=1", "logger.wandb.mode=disabled",
                                      "trainer.enable_progress_bar=false"],
                     cwd=tmp_path, env=cli_env(tmp_path / "home"), timeout=240)
    assert result["rc"] == 0, result["stderr"][-3000:]
    summaries = list((tmp_path / "outputs" / "my_data").rglob("summary.json"))  # outputs/<data>/<name>/<time>/
    assert len(summaries) == 1
    run_dir = summaries[0].parent
    summary = json.loads(summaries[0].read_text())
    assert Path(summary["run_dir"]).resolve() == run_dir.resolve()
    assert summary["status"] == "finished"
    data = summary["config"]["data"]
    assert (data["name"], data["channels"], data["num_classes"], data["shift"]) == ("my_data", 2, 3, 2)
    assert (summary["config"]["in_channels"], summary["config"]["num_classes"]) == (2, 3)
    assert 0.0 <= summary["test"]["test/acc1"] <= 1.0
    # the network really takes 2 channels and predicts 3 classes: the stem's and the head's weights say so
    import torch

    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    four_d = [v for v in state.values() if v.ndim == 4]
    two_d = [v for v in state.values() if v.ndim == 2]
    assert any(v.shape[1] == 2 for v in four_d), "no convolution takes the 2 input channels"
    assert two_d[-1].shape[0] == 3, f"the head has {two_d[-1].shape[0]} outputs"


def _fit_main(argv: list[str], folder: Path, monkeypatch, capsys) -> tuple[int, str]:
    """``python -m horesnet.fit ARGV`` in this process (the plugin is already imported: it is this module)."""
    import horesnet.fit

    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "argv", ["horesnet.fit", *argv])
    try:
        code = horesnet.fit.main()  # returns its exit status, as python -m horesnet.fit exits with it
    except SystemExit as stop:  # an error inside the Hydra task still exits
        code = stop.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("bad, expected", [("data.shift=9", ["data.shift=9", "<= 7"]),
                                           ("data.shift=left", ["data.shift='left'", "an integer"])])
def test_a_bad_value_of_the_plugin_option_is_refused(tmp_path, monkeypatch, capsys, bad, expected):
    code, err = _fit_main(["data=my_data", bad, "depth=8", "width=0.25", "trainer.max_epochs=1"], tmp_path,
                          monkeypatch, capsys)
    assert code == 2
    assert err.startswith("horesnet.fit: error:") and all(e in err for e in expected), err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == [], "a refused command line must write nothing"


def test_an_unknown_dataset_names_the_plugin_dataset_among_the_choices(tmp_path, monkeypatch, capsys):
    code, err = _fit_main(["data=my_dta"], tmp_path, monkeypatch, capsys)
    assert code == 2
    assert "'my_dta'" in err and "'my_data'" in err and "'cifar10'" in err and "'synthetic'" in err, err
    assert list(tmp_path.iterdir()) == []


def test_the_option_reaches_the_reader(tmp_path):
    """``data.shift=3`` from the command line arrives at the reader: the test images are the unshifted ones rolled
    3 pixels to the right."""
    from omegaconf import OmegaConf

    from horesnet.cli.compose import compose
    from horesnet.data import ArrayDataModule

    def test_images(*overrides):
        data = OmegaConf.to_container(compose("fit", ["data=my_data", *overrides]).data, resolve=True)
        dm = ArrayDataModule(**data)
        dm.setup()
        return dm.splits["test"].x.numpy()

    plain, shifted = test_images(), test_images("data.shift=3")
    assert plain.shape == (N_TEST, 2, 16, 16)
    assert np.array_equal(shifted[..., 3:], plain[..., :-3]) and np.array_equal(shifted[..., :3], plain[..., -3:])
    assert not np.array_equal(shifted, plain)
