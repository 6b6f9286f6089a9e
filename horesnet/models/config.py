"""The one definition of a network's options (docs/design.md, "One model config").

:class:`ModelConfig` holds every option of :func:`~horesnet.models.build_model` with its default, its meaning and
its command-line spec. ``build_model``'s defaults, the Hydra ``model`` config (a ConfigStore node made from it), the
schema of the command lines, ``summary.json``, the resume check and ``compare``'s variant labels all derive from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..errors import PLUGIN_HINT, ConfigError
from ..spec import BOOL, NON_NEGATIVE, POSITIVE, POSITIVE_INT, Option, Spec

# an adaptive solve in float32 below 1e-8 takes thousands of steps per batch (or underflows: a traceback)
ODE_TOL = Spec("real", low=1e-8, high=1, hint="Below 1e-8 a float32 adaptive solve takes tens of thousands of "
               "function evaluations per batch or fails with a step-size underflow; above 1 it is no tolerance.")


def _choices(name: str):
    def get():
        from .. import nn as hnn
        from ..schemes import list_schemes
        from .layout import CONV_ARCHS, FAMILY_PLANNERS, list_blocks  # FAMILY_PLANNERS: the registered families

        return {"unit": hnn.list_units, "placement": hnn.list_placements, "norm": lambda: hnn.NORMS,
                "ode_method": lambda: hnn.ODE_METHODS, "block": list_blocks, "inner": list_schemes,
                "arch": lambda: (*CONV_ARCHS, *FAMILY_PLANNERS)}[name]()
    return get


def option(default, spec: Spec, help: str):  # noqa: A002 -- the field's help text
    """A dataclass field declared as an :class:`~horesnet.spec.Option` (default, command-line spec, one line of
    help)."""
    return field(default=default, metadata={"option": Option(default, spec, help)})


@dataclass(frozen=True)
class ModelConfig:
    """Every option of a network (He et al. 2015/2016 CIFAR and ImageNet families, any registered scheme)."""

    arch: str = option("cifar", Spec("choice", choices=_choices("arch"), hint=PLUGIN_HINT),
                       "cifar | imagenet | transformer (docs/transformers.md)")
    depth: int | None = option(56, Spec("int", low=1, nullable=True),
                               "cifar: 6n+2 (basic) / 9n+2 (bottleneck); imagenet: 18/34/50/101/152")
    block: str = option("euler", Spec("choice", choices=_choices("block"), hint=PLUGIN_HINT),
                        "any registered scheme (python -m horesnet.info list=schemes) or `ode`")
    unit: str | None = option(None, Spec("choice", choices=_choices("unit"), nullable=True, hint=PLUGIN_HINT),
                              "registered unit (null: basic for cifar, the paper's unit for imagenet)")
    placement: str = option("original", Spec("choice", choices=_choices("placement"), hint=PLUGIN_HINT),
                            "where BN/ReLU sit (python -m horesnet.info list=placements)")
    shortcut: str | None = option(None, Spec("choice", choices=("A", "B", "C", "a", "b", "c", "plain"), nullable=True),
                                  "A | B | C | plain (null: A for cifar, B for imagenet, as He et al. 2015)")
    num_classes: int = option(10, Spec("int", low=2), "classes of the linear head (fit: follows the data)")
    in_channels: int = option(3, POSITIVE_INT, "image channels (fit: follows the data)")
    width: float = option(1, POSITIVE, "multiplies the stage widths 16/32/64 (cifar) or 64/128/256/512 (imagenet)")
    stem_stride: int = option(1, POSITIVE_INT, "stride of the CIFAR stem conv")
    entry: str = option("euler", Spec("choice", choices=("euler", "scheme")),
                        "euler: an Euler entry block per stage | scheme: the stride inside the first scheme block")
    stages: list[int] | None = option(None, Spec("ints", low=1, nullable=True),
                                      "explicit units per stage, e.g. [10,9,9]; overrides depth")
    strict: bool = option(False, BOOL, "true: leftover units that do not fill a block are an error")
    tied: bool = option(False, BOOL, "true: one shared unit per block (a true ODE-solver step)")
    step: float = option(1.0, NON_NEGATIVE, "h (0 only with learn_step: a learnable step starting at 0)")
    learn_step: bool = option(False, BOOL, "true: h is a learnable scalar per block, initialised to `step`")
    inner: str | None = option(None, Spec("choice", choices=_choices("inner"), nullable=True),
                               "nested scheme inside every unit of a block (RK-in-RK)")
    norm: str = option("batch", Spec("choice", choices=_choices("norm")), "batch | group (GroupNorm for tied/ODE)")
    stride_in_3x3: bool = option(False, BOOL, "bottleneck stride on the 3x3 conv (torchvision V1.5)")
    ode_method: str = option("dopri5", Spec("choice", choices=_choices("ode_method")), "block=ode: torchdiffeq method")
    ode_rtol: float = option(1.0e-3, ODE_TOL, "block=ode: relative tolerance")
    ode_atol: float = option(1.0e-3, ODE_TOL, "block=ode: absolute tolerance")
    ode_adjoint: bool = option(False, BOOL, "block=ode: adjoint backward pass")
    zero_init_last: bool = option(False, BOOL, "last norm of every unit starts at gamma=0: the network starts as its "
                                  "shortcut path (Goyal et al. 2017)")
    drop_path_rate: float = option(0.0, Spec("real", low=0, high=1, open_high=True),
                                   "stochastic depth: drop probability of the last unit, linear in depth from 0 "
                                   "(Huang et al. 2016)")
    # multistep blocks only (block=lm|momentum|ab2|ab3|leapfrog|average, docs/multistep.md)
    coefficient: float | None = option(None, Spec("real", nullable=True),
                                       "multistep: the value of the scheme's coefficient, momentum's gamma or lm's k "
                                       "(null: the scheme's own, 0.9 and -0.05)")
    learn_coefficients: bool | None = option(None, Spec("bool", nullable=True),
                                             "multistep: learn the scheme's coefficients (null: the scheme's default: "
                                             "lm's k and average's weights learned, momentum's gamma fixed)")
    coefficient_per_channel: bool = option(False, BOOL, "multistep: one learned coefficient per channel (lm's k, "
                                           "drawn from U[-0.1, 0] as Lu et al. 2018)")
    reversible: bool = option(False, BOOL, "multistep: memory-free training, each stage's states recomputed "
                              "backwards by inverting its recurrence (momentum, lm, leapfrog; a placement without an "
                              "activation after the addition, e.g. full_preact)")
    reversible_unsafe: bool = option(False, BOOL, "reversible=true although a stage is deeper than the predicted safe "
                                     "inversion depth (predicted reconstruction error > 1e-4 in float32): train "
                                     "anyway, with a warning")
    # arch=transformer only (horesnet/models/transformer.py, docs/transformers.md); the conv families ignore them
    layout: str = option("alternate", Spec("choice", choices=("alternate", "layer", "macaron")),
                         "transformer units: alternate (one per attention/MLP branch) | layer (one per layer, "
                         "G(x) = layer(x) - x) | macaron (MLP/2, attention, MLP/2; block=euler only)")
    d_model: int = option(64, POSITIVE_INT, "transformer: width of the token features")
    heads: int = option(4, POSITIVE_INT, "transformer: attention heads (they divide d_model)")
    mlp_ratio: float = option(4.0, POSITIVE, "transformer: MLP hidden width / d_model")
    context: int | None = option(None, Spec("int", low=1, nullable=True),
                                 "transformer: tokens per sequence (null: the data's sequence length; 128 outside fit)")
    vocab_size: int | None = option(None, Spec("int", low=2, nullable=True),
                                    "transformer, embed=token: vocabulary size (null: num_classes, a language model's)")
    embed: str | None = option(None, Spec("choice", choices=("token", "vector"), nullable=True),
                               "transformer input: token ids | vectors of in_channels values (null: the data's)")
    causal: bool | None = option(None, Spec("bool", nullable=True),
                                 "transformer: true a causal decoder (language model), false an encoder (null: the "
                                 "data's task)")
    pos: str = option("learned", Spec("choice", choices=("learned", "sinusoidal")), "transformer: positional encoding")
    pool: str = option("avg", Spec("choice", choices=("avg", "token")),
                       "transformer encoder head: mean over tokens | a class token")
    activation: str = option("gelu", Spec("choice", choices=("gelu", "relu")), "transformer: MLP activation")
    dropout: float = option(0.0, Spec("real", low=0, high=1, open_high=True), "transformer: dropout rate")

    @classmethod
    def from_options(cls, options: dict) -> ModelConfig:
        """The validated config of ``options`` (a dict of model options): the omitted ones at their defaults, the
        family's ``shortcut`` resolved (:func:`complete`), ``stages`` a list, every option checked against its spec
        (:func:`check_options`). The one form :func:`~horesnet.models.build_model` builds from."""
        options = complete(options)
        options["stages"] = list(options["stages"]) if options["stages"] is not None else None
        check_options(options)
        return cls(**options)

    def as_dict(self) -> dict:
        return asdict(self)


MODEL_KEYS = tuple(f.name for f in fields(ModelConfig))


def model_defaults() -> dict:
    """Every model option with its default."""
    return {f.name: f.default for f in fields(ModelConfig)}


def model_options() -> dict[str, Option]:
    """Every model option as declared: default, spec, help."""
    return {f.name: f.metadata["option"] for f in fields(ModelConfig)}


def model_specs() -> dict[str, Spec]:
    """Every model option with its command-line spec."""
    return {name: option.spec for name, option in model_options().items()}


def check_options(options: dict) -> None:
    """Every option of a network against its declared spec: the one check of their types and ranges (the command
    lines run the same specs when they compose). ``num_classes`` is checked with the head (0: timm's headless
    network, which the command lines never build)."""
    for name, option in model_options().items():
        if name != "num_classes":
            option.spec.check(name, options[name])


def complete(options: dict) -> dict:
    """``options`` with every model option it leaves out at its default (an older checkpoint or summary lacks
    options added since); an unknown key is a ConfigError naming the valid ones."""
    unknown = sorted(set(options) - set(MODEL_KEYS))
    if unknown:
        raise ConfigError(f"unknown model option(s) {', '.join(map(repr, unknown))}; valid options: "
                          f"{', '.join(MODEL_KEYS)}.")
    out = {**model_defaults(), **options}
    if out["shortcut"] is None:  # the family's own default (He et al. 2015: A on CIFAR, B on ImageNet)
        out["shortcut"] = "B" if out["arch"] == "imagenet" else "A"
    return out


def arch_defaults(arch: str) -> dict:
    """Every model option at its default for ``arch``, the family-dependent ones (``shortcut``) resolved."""
    return complete({"arch": arch})


def store_model_node() -> None:
    """The Hydra ``model`` config (top-level keys ``block=rk4 depth=56``): a ConfigStore node made from
    :class:`ModelConfig`'s defaults, listed in the defaults of fit.yaml, analyze.yaml and info.yaml."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="model", node=model_defaults(), package="_global_", provider="horesnet")
