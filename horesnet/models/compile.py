"""``compile_model``: ``torch.compile`` of a network in place, for training and evaluation (docs/speed.md).

``nn.Module.compile`` keeps the module and its state-dict keys (no ``_orig_mod.`` prefix), so checkpoints of a
compiled run load into a plain network and the analysis tools see the same module tree. A scheme block traces
without a graph break (tests use ``torch._dynamo.explain``); ODE blocks break the graph where torchdiffeq's
adaptive step control branches on tensor values.
"""

from __future__ import annotations

from torch import nn

from ..errors import check_choice

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_model(model: nn.Module, mode: str = "default", *, fullgraph: bool = False, dynamic: bool | None = None,
                  backend: str = "inductor") -> nn.Module:
    """Compile ``model``'s forward with ``torch.compile(mode=mode)`` in place and return the same module.

    ``backend`` other than inductor (e.g. ``"aot_eager"``: traced and differentiated, not code-generated) is for
    checking a model traces correctly; ``mode`` only applies to inductor.
    """
    check_choice("compile_mode", mode, COMPILE_MODES)
    if backend == "inductor":
        model.compile(mode=mode, fullgraph=fullgraph, dynamic=dynamic)
    else:
        model.compile(backend=backend, fullgraph=fullgraph, dynamic=dynamic)
    return model
