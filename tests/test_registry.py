"""One registry type (horesnet/registry.py, docs/extending.md "One registry type"): the generic registry (lock, hint,
order, origin, snapshot/restore, callbacks), every kind of named thing is one instance of it and listed by
``registries()``, every ``register_*`` is importable from ``horesnet``, and a plugin's entries record its file."""

from __future__ import annotations

import textwrap

import pytest

import horesnet
from horesnet.errors import ConfigError
from horesnet.registry import Registry, RegistryError, find_registry, registries, restore_all, snapshot_all

KINDS = ("scheme", "unit", "placement", "family", "dataset", "study")


def fresh(**kw) -> Registry:
    registry = Registry("widget", **{"sort": False, **kw})
    for name in ("beta", "alpha"):
        registry.register(name, name.upper())
    registry.lock_builtins()
    return registry


def test_order_sorted_or_as_registered():
    assert fresh().names() == ["beta", "alpha"]
    assert fresh(sort=True).names() == ["alpha", "beta"]
    registry = fresh()
    registry.register("aardvark", 1)
    assert registry.names() == ["beta", "alpha", "aardvark"] and "aardvark" in registry and len(registry) == 3
    assert registry.items()[2] == ("aardvark", 1)


def test_unknown_names_get_the_closest_and_every_choice():
    registry = fresh(hint="A plugin adds more.")
    with pytest.raises(RegistryError) as err:
        registry.get("alpah")
    assert str(err.value) == ("unknown widget 'alpah'; did you mean 'alpha'? valid choices: 'beta', 'alpha'. "
                              "A plugin adds more.")
    with pytest.raises(ConfigError, match=r"unknown widget \['x'\]; valid choices"):
        registry.get(["x"])  # unhashable: still the registry's error
    assert isinstance(err.value, ValueError)


def test_the_lock_makes_builtins_that_are_never_replaced_or_removed():
    registry = fresh()
    assert registry.builtins() == ["beta", "alpha"] and registry.locked
    registry.register("mine", 1)
    registry.lock_builtins()  # once only
    assert registry.builtins() == ["beta", "alpha"] and not registry.is_builtin("mine")
    for call in (lambda: registry.register("alpha", 2, overwrite=True), lambda: registry.unregister("alpha")):
        with pytest.raises(RegistryError, match="'alpha' is built in"):
            call()
    assert registry.get("alpha") == "ALPHA"
    with pytest.raises(RegistryError, match="already registered; pass overwrite=True"):
        registry.register("mine", 2)
    registry.register("mine", 2, overwrite=True)
    assert registry.unregister("mine") == 2 and "mine" not in registry
    with pytest.raises(RegistryError, match="unknown widget 'mine'"):
        registry.unregister("mine")


@pytest.mark.parametrize("name, words", [("1st", "invalid widget name '1st'"), ("a-b", "invalid widget name"),
                                         (3, "invalid widget name 3"), ("All", "'All' is reserved (it means all)")])
def test_bad_names_are_refused(name, words):
    registry = Registry("widget", sort=True, reserved={"all": "it means all"})
    with pytest.raises(RegistryError, match=words.replace("(", r"\(").replace(")", r"\)")):
        registry.register(name, 1)
    assert registry.names() == []


def test_a_registry_with_its_own_error_type():
    class WidgetError(ConfigError):
        pass

    registry = Registry("widget", sort=True, error=WidgetError)
    with pytest.raises(WidgetError):
        registry.get("x")


def test_origin_is_the_calling_file_and_none_for_builtins():
    registry = fresh()
    registry.register("mine", 1)
    assert registry.origin("alpha") is None and registry.origin("mine") == __file__
    assert registry.origins() == {"beta": None, "alpha": None, "mine": __file__}


def test_callbacks_derive_side_effects_and_a_failing_one_undoes_the_registration():
    registry, derived, seen = fresh(), {}, []

    @registry.on_change
    def mirror(name, old, new):
        seen.append((name, old, new))
        if new is None:
            derived.pop(name)
        else:
            derived[name] = new

    @registry.on_change
    def refuse(name, old, new):
        if new == "bad":
            raise RegistryError("refused")

    registry.register("x", 1)
    registry.register("x", 2, overwrite=True)
    assert derived == {"x": 2} and seen == [("x", None, 1), ("x", 1, 2)]
    with pytest.raises(RegistryError, match="refused"):
        registry.register("x", "bad", overwrite=True)
    assert registry.get("x") == 2 and derived == {"x": 2}  # mirror ran, then was undone
    with pytest.raises(RegistryError, match="refused"):
        registry.register("y", "bad")
    assert "y" not in registry and "y" not in derived
    registry.unregister("x")
    assert derived == {}


def test_snapshot_and_restore_run_the_callbacks():
    registry, derived = fresh(), {}
    registry.on_change(lambda name, old, new: derived.pop(name) if new is None else derived.update({name: new}))
    registry.register("kept", 1)
    snap = registry.snapshot()
    registry.register("added", 2)
    registry.register("kept", 3, overwrite=True)
    registry.restore(snap)
    assert registry.names() == ["beta", "alpha", "kept"] and registry.get("kept") == 1
    assert derived == {"kept": 1}


def test_restore_all_resets_a_registry_made_since_to_its_builtins():
    snaps = snapshot_all()
    registry = fresh()
    registry.register("mine", 1)
    restore_all(snaps)
    assert registry.names() == ["beta", "alpha"]


def test_every_kind_is_one_registry_listed_by_registries():
    import horesnet.analysis  # noqa: F401 -- the study registry
    import horesnet.data  # noqa: F401 -- the dataset registry

    listed = registries()
    for kind in KINDS:
        registry = find_registry(kind)
        assert isinstance(registry, Registry) and registry in listed and registry.locked, kind
        assert registry.builtins(), kind
    assert find_registry("scheme").names() == horesnet.list_schemes()
    assert find_registry("unit").names() == horesnet.list_units()
    assert find_registry("placement").names() == horesnet.list_placements()
    assert find_registry("dataset").names() == horesnet.list_datasets()
    assert find_registry("study").names() == horesnet.list_studies()
    assert find_registry("family").names() == horesnet.list_families() == ["transformer"]
    with pytest.raises(RegistryError, match="unknown registry 'units'; did you mean 'unit'"):
        find_registry("units")


@pytest.mark.parametrize("kind", ["scheme", "unit", "placement", "family", "dataset", "study"])
def test_register_get_list_unregister_are_importable_from_horesnet(kind):
    plural = {"family": "families", "study": "studies"}.get(kind, kind + "s")
    for name in (f"register_{kind}", f"get_{kind}", f"list_{plural}", f"unregister_{kind}"):
        assert callable(getattr(horesnet, name)), name
        assert name in horesnet.__all__, name
    assert {"Registry", "RegistryError", "registries"} <= set(horesnet.__all__)


def test_import_horesnet_stays_light():
    import subprocess
    import sys

    code = "import sys, horesnet; print(sorted(m for m in ('hydra', 'lightning', 'timm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_builtins_are_locked_in_every_kind():
    with pytest.raises(ConfigError, match="built in"):
        horesnet.register_placement(horesnet.get_placement("original"), overwrite=True)
    with pytest.raises(ConfigError, match="built in"):
        horesnet.unregister_unit("basic")
    with pytest.raises(ConfigError, match="built in"):
        horesnet.unregister_dataset("cifar10")
    with pytest.raises(ConfigError, match="built in"):
        horesnet.unregister_family("transformer")


def test_a_test_registration_is_gone_after_the_test_part_1():
    from horesnet.nn import Placement

    horesnet.register_placement(Placement("tmp_gone", ("conv",), ("conv",), (), (), ()))
    horesnet.register_scheme("tmp_gone", [[0]], [1])
    assert "tmp_gone" in horesnet.list_placements()


def test_a_test_registration_is_gone_after_the_test_part_2():
    assert "tmp_gone" not in horesnet.list_placements() and "tmp_gone" not in horesnet.list_schemes()


def test_a_placement_name_is_checked():
    from horesnet.nn import Placement

    with pytest.raises(ConfigError, match="invalid placement name 'no good'"):
        horesnet.register_placement(Placement("no good", ("conv",), ("conv",), (), (), ()))


def test_a_plugin_file_registering_a_unit_records_its_origin(tmp_path):
    from horesnet.plugins import load_plugins

    plugin = tmp_path / "origin_unit.py"
    plugin.write_text(textwrap.dedent("""
        from torch import nn
        from horesnet import register_unit

        register_unit("tmp_origin_unit", lambda cin, cout, stride, options: nn.Conv2d(cin, cout, 3, stride, 1),
                      convs=1)
    """))
    load_plugins([str(plugin)])
    units = find_registry("unit")
    assert units.origin("tmp_origin_unit") == str(plugin.resolve())
    assert units.origin("basic") is None
