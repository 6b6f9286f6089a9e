"""The study registry (docs/extending_studies.md): the composed ``analyze`` config is the one analyze.yaml gave when
it listed every study option itself, the built-ins are registered with what they need, and bad registrations are
refused without changing anything.

``BEFORE`` is the composed config written down from the analyze.yaml that held the study options (defaults and
values, independent of the registry; ``shortcut: null`` is the family's default, option A for CIFAR). Studies
registered here are unregistered at the end of each test.
"""

from __future__ import annotations

import pytest

from horesnet.analysis import Option, builtin_studies, get_study, list_studies, register_study, unregister_study
from horesnet.analysis.registry import defaults
from horesnet.cli.compose import compose
from horesnet.cli.schema import COUNT, Spec, schema_for
from horesnet.errors import ConfigError

BEFORE = {
    "arch": "cifar", "depth": 56, "block": "euler", "unit": None, "placement": "original", "shortcut": None,
    "num_classes": 10, "in_channels": 3, "width": 1, "stem_stride": 1, "entry": "euler", "stages": None,
    "strict": False, "tied": False, "step": 1.0, "learn_step": False, "inner": None, "norm": "batch",
    "stride_in_3x3": False, "ode_method": "dopri5", "ode_rtol": 0.001, "ode_atol": 0.001, "ode_adjoint": False,
    "zero_init_last": False, "drop_path_rate": 0.0,
    # the model options added since, at their defaults: multistep schemes and Transformer stacks
    "coefficient": None, "learn_coefficients": None, "coefficient_per_channel": False, "reversible": False,
    "reversible_unsafe": False, "layout": "alternate", "d_model": 64, "heads": 4, "mlp_ratio": 4.0, "context": None,
    "vocab_size": None, "embed": None, "causal": None, "pos": "learned", "pool": "avg", "activation": "gelu",
    "dropout": 0.0,
    "ckpt": None, "study": "all", "split": "test", "data_name": None, "data_root": None, "limit": 2000,
    "batch_size": 250, "out": None, "seed": 0, "device": "auto", "granularity": "unit",
    "ks": None, "trials": 5, "swaps": None, "weighted": False,  # null: sized to the network being analysed
    "samples_per_length": 1000, "effective_images": 256, "sigmas": [0.0, 0.02, 0.05, 0.1, 0.2, 0.3],
    "wandb": "auto", "fresh": False, "plugins": [],
}
BUILTIN = ["lesion", "lesion_random", "reorder", "paths", "effective", "responses", "refinement", "robustness"]


def plain(overrides: list[str]) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose("analyze", overrides), resolve=True)


def plugin_defaults() -> dict:
    """Options of studies registered outside horesnet in this process (a test module that is a plugin)."""
    return {k: o.default for n in list_studies() if n not in BUILTIN for k, o in get_study(n).options.items()}


@pytest.mark.parametrize("overrides, changed", [
    ([], {}),
    (["study=lesion_random", "ks=[1,2]", "trials=3"], {"study": "lesion_random", "ks": [1, 2], "trials": 3}),
    (["study=paths", "block=rk4", "depth=56", "weighted=true", "seed=7", "sigmas=[0.1]", "granularity=both",
      "limit=null"], {"study": "paths", "block": "rk4", "weighted": True, "seed": 7, "sigmas": [0.1],
                      "granularity": "both", "limit": None}),
], ids=["defaults", "lesion_random", "mixed"])
def test_the_composed_config_is_unchanged(overrides, changed):
    assert plain(overrides) == {**BEFORE, **changed, **plugin_defaults()}


def test_the_builtins_are_registered_in_order():
    assert list_studies()[:8] == BUILTIN
    assert builtin_studies() == BUILTIN
    for name in BUILTIN:  # only paths works from a config alone, and it needs no data
        study = get_study(name)
        assert (study.needs_checkpoint, study.needs_data) == ((False, False) if name == "paths" else (True, True))
        assert study.description
    assert get_study("lesion").tables == ("lesion", "lesion_block")
    assert get_study("robustness").options["sigmas"].default == BEFORE["sigmas"]


def test_an_unknown_study_names_the_valid_choices():
    with pytest.raises(ConfigError) as err:
        get_study("lesions")
    assert "'lesions'" in str(err.value)
    for name in BUILTIN:
        assert repr(name) in str(err.value)


def _compute(model, data, options):
    return {}


def _plot(records, path, title=""):
    return path


@pytest.mark.parametrize("kw, needle", [
    (dict(name="all"), "reserved"),
    (dict(name="lesion"), "built in"),
    (dict(name="my-study"), "invalid study name"),
    (dict(plots={"paths": _plot}), "already written by study 'paths'"),
    (dict(plots={}), "plot function"),
    (dict(compute=None), "compute must be a function"),
    (dict(options={"limit": Option(5, Spec("int", low=1, nullable=True))}), "already a key"),
    (dict(options={"depth": Option(20, Spec("int", low=1, nullable=True))}), "already a key"),
    (dict(options={"seed": Option(0, Spec("int", low=0, high=9))}), "same default and spec"),
    (dict(options={"seed": Option(1, COUNT)}), "same default and spec"),
    (dict(options={"tmp_rate": Option(-1.0, Spec("real", low=0))}), "refused by its own spec"),
    (dict(options={"tmp_rate": 0.5}), "Option(default, Spec"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_bad_registration_is_refused_and_changes_nothing(kw, needle):
    names, schema, node = list_studies(), dict(schema_for("analyze")), defaults()
    args = {"name": "tmp_bad", "compute": _compute, "plots": _plot, **kw}
    with pytest.raises(ValueError) as err:
        register_study(args.pop("name"), args.pop("compute"), args.pop("plots"), **args)
    assert needle in str(err.value)
    assert (list_studies(), dict(schema_for("analyze")), defaults()) == (names, schema, node)


def test_a_shared_option_and_unregistering():
    register_study("tmp_a", _compute, _plot, options={"seed": Option(0, COUNT), "tmp_key": Option(2, COUNT)})
    try:
        assert plain(["tmp_key=3"])["tmp_key"] == 3
        assert plain([])["tmp_key"] == 2
        with pytest.raises(ValueError, match="already registered"):
            register_study("tmp_a", _compute, _plot)
        register_study("tmp_a", _compute, _plot, options={"tmp_key": Option(4, Spec("int", low=3))}, overwrite=True)
        assert plain([])["tmp_key"] == 4
        with pytest.raises(ConfigError, match="tmp_key=2"):
            compose("analyze", ["tmp_key=2"])
    finally:
        unregister_study("tmp_a")
    assert "tmp_a" not in list_studies() and "tmp_key" not in schema_for("analyze")
    assert schema_for("analyze")["seed"] == COUNT  # still declared by the built-ins
    with pytest.raises(ConfigError, match="unknown option 'tmp_key'"):
        compose("analyze", ["tmp_key=3"])
    with pytest.raises(ValueError, match="built in"):
        unregister_study("paths")


def test_a_study_returning_an_undeclared_table_is_a_bug():
    from horesnet.cli.analyze import run_study

    study = register_study("tmp_b", lambda m, d, o: {"other": [{"a": 1}]}, _plot, needs_data=False)
    try:
        with pytest.raises(TypeError, match="'other'"):
            run_study(study, None, None, {})
    finally:
        unregister_study("tmp_b")
