"""Run ``horesnet.fit``'s real ``main()`` and kill this process with SIGKILL at a chosen point (crash tests).

CRASH_AT=step:N      inside the N-th training step of this process
CRASH_AT=write:N     inside the N-th checkpoint write: the temporary file is complete, the rename not yet done
CRASH_AT=before_test after the final checkpoint, before the test set is evaluated
"""

from __future__ import annotations

import os
import signal
import sys

point, _, count = os.environ.get("CRASH_AT", "").partition(":")
calls = {"n": 0}


def _tick() -> None:
    calls["n"] += 1
    if calls["n"] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


if point == "step":
    from horesnet.training.module import ClassifierModule

    _step = ClassifierModule.training_step

    def training_step(self, *args, **kwargs):
        _tick()
        return _step(self, *args, **kwargs)

    ClassifierModule.training_step = training_step
elif point == "write":
    _replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if ".ckpt." in os.path.basename(str(src)):
            _tick()
        return _replace(src, dst, *args, **kwargs)

    os.replace = replace
elif point == "before_test":
    import pytorch_lightning as pl

    def test(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    pl.Trainer.test = test

from horesnet.fit import main  # noqa: E402

sys.argv = ["horesnet.fit", *sys.argv[1:]]
raise SystemExit(main())
