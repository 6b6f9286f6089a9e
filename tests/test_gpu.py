"""CUDA checks (marker ``gpu``; skipped without a CUDA device): forward/backward of every registered scheme in fp32,
bf16 autocast, channels_last and compiled, tied, nested and ODE blocks, and training steps through the Lightning
module without a host-device synchronisation per step. Run by ``benchmarks/gpu_check.sh``
(docs/benchmarks_method.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import horesnet
from horesnet import build_model, compile_model, list_schemes
from horesnet.errors import ConfigError

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(),
                                                  reason="needs a CUDA device (torch.cuda.is_available() is False)")]
MODES = ("fp32", "bf16", "channels_last", "compiled")


def smallest(**options) -> torch.nn.Module:
    """The shallowest CIFAR network (width 0.25) that holds at least one block of these options."""
    for depth in (8, 14, 20, 32, 44, 56, 92, 110, 128):
        try:
            return build_model(depth=depth, width=0.25, num_classes=10, **options)
        except ConfigError:
            continue
    raise AssertionError(f"no depth up to 128 builds {options}")


def forward_backward(model: torch.nn.Module, mode: str, batch: int = 4) -> torch.Tensor:
    """One training forward/backward on CUDA in ``mode``; checks the logits and that every gradient is finite."""
    torch.manual_seed(0)
    model = model.cuda().train()
    x = torch.randn(batch, 3, 32, 32, device="cuda")
    y = torch.randint(0, 10, (batch,), device="cuda")
    if mode == "channels_last":
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    if mode == "compiled":
        torch._dynamo.reset()  # compiled ResNets share ResNet.forward's dynamo cache (and its recompile limit)
        compile_model(model)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "bf16"):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y)
    loss.backward()
    assert logits.shape == (batch, 10) and logits.device.type == "cuda"
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    return logits.detach()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scheme", list_schemes("rk"))
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_scheme_forward_backward(scheme, mode):
    forward_backward(smallest(block=scheme), mode)


@pytest.mark.parametrize("options", [dict(block="euler", tied=True), dict(block="midpoint", inner="midpoint"),
                                     dict(block="rk4", inner="midpoint"), dict(block="ode")], ids=str)
@pytest.mark.parametrize("mode", ("fp32", "bf16"))
def test_variant_forward_backward(options, mode):
    forward_backward(smallest(**options), mode)


def test_cuda_matches_cpu():
    """The same weights give the same eval logits on CUDA (fp32, TF32 allowed) and on the CPU."""
    model = smallest(block="rk4").eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        cpu = model(x)
        gpu = model.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=2e-2, atol=2e-2)


def test_training_steps_do_not_sync():
    """A bf16, channels_last run of the real ClassifierModule under Lightning on the GPU-resident ArrayDataModule
    (synthetic data, augmentation on the GPU) runs from the start of step 3 to the end of step 7 of 8 with
    ``torch.cuda.set_sync_debug_mode("error")``: any host-device sync there (loop, data, model, logging) raises."""
    import pytorch_lightning as pl
    import yaml

    from horesnet.data import ArrayDataModule
    from horesnet.training.module import ClassifierModule

    optim = yaml.safe_load((Path(horesnet.__file__).parent / "configs" / "optim" / "he.yaml").read_text())
    module = ClassifierModule({"block": "rk4", "depth": 32, "width": 0.25, "num_classes": 10}, optim,
                              channels_last=True)
    data = ArrayDataModule("synthetic", batch_size=32, val_size=32, synthetic={
        "train_size": 8 * 32 + 32, "test_size": 32, "num_classes": 10, "channels": 3, "image_size": 32})
    first, last = 2, 6  # batch indices: warm-up before, the epoch's last step and its end after

    class SyncGuard(pl.Callback):
        steps = 0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == first:
                torch.cuda.set_sync_debug_mode("error")
            self.steps += torch.cuda.get_sync_debug_mode() == 2

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == last:
                torch.cuda.set_sync_debug_mode("default")

    guard = SyncGuard()
    trainer = pl.Trainer(accelerator="gpu", devices=1, precision="bf16-mixed", max_epochs=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, benchmark=True, callbacks=[guard])
    try:
        trainer.fit(module, datamodule=data)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert data.splits["train"].x.device.type == "cuda"  # the resident dataset of trainer=gpu
    assert trainer.global_step == 8 and guard.steps == last - first + 1
