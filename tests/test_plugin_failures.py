"""A plugin's failure is a plugin error: exit status 2, one ``error:`` paragraph naming the plugin's file and line,
no traceback, never a success (``sys.exit(0)``) or a "diverged" (``sys.exit(3)``): at import, in a unit's factory,
in its forward (an output of the wrong shape, found by a probe at build time). docs/reliability.md, section 1."""

from __future__ import annotations

import textwrap

import pytest

from ._cli_helpers import cli_env, run_cli
from ._training_helpers import CLI_TINY

UNIT = """
from torch import nn
from horesnet.nn.units import register_unit


class Unit(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)

    def forward(self, x):
        return {forward}


def factory(cin, cout, stride, options):
    {factory}
    return Unit(cin, cout, stride)


register_unit("{name}", factory, convs=1)
"""

# name -> (tool, the plugin's import-time line, its factory's line, its forward, words of the message)
CASES = {
    "import_exit0": ("fit", "import sys; sys.exit(0)", "pass", "self.conv(x)", ["importing", "sys.exit(0)"]),
    "import_interrupt": ("info", "raise KeyboardInterrupt", "pass", "self.conv(x)",
                         ["importing", "KeyboardInterrupt"]),
    "factory_raises": ("info", "", "raise RuntimeError('boom')", "self.conv(x)",
                       ["its factory", "RuntimeError: boom"]),
    "factory_exit3": ("fit", "", "import sys; sys.exit(3)", "self.conv(x)", ["its factory", "sys.exit(3)"]),
    "wrong_shape": ("fit", "", "pass", "self.conv(x)[:, :1]", ["returned (1, 1,", "out_channels"]),
    # past the build-time probe (it runs in evaluation mode): exit status 3 would read as "diverged"
    "forward_exit3_training": ("fit", "", "pass", "__import__('sys').exit(3) if self.training else self.conv(x)",
                               ["while training", "sys.exit(3)"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_failing_plugin_is_a_plugin_error(tmp_path, case):
    tool, top, factory, forward, words = CASES[case]
    name = f"bad_{case}"
    plugin = tmp_path / f"{name}.py"
    plugin.write_text(textwrap.dedent(f"{top}\n") + UNIT.format(forward=forward, factory=factory, name=name))
    (tmp_path / "cwd").mkdir()
    args = ([*CLI_TINY, f"unit={name}", "depth=5"] if tool == "fit" else [f"unit={name}", "depth=5"])
    res = run_cli(f"horesnet.{tool}", [*args, f"plugins=[{plugin}]"], tmp_path / "cwd",
                  cli_env(home=tmp_path / "home"), timeout=150)
    err = res["stderr"]
    assert res["rc"] == 2, f"exit status {res['rc']}\n{err[-3000:]}"
    assert "Traceback" not in err + res["stdout"], err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith(f"horesnet.{tool}: error: ")]
    assert len(errors) == 1, err[-3000:]
    for word in ["plugin error", str(plugin), *words]:
        assert word in errors[0], f"{word!r} not in {errors[0]}"
    if case != "wrong_shape":
        assert f"{plugin}:" in errors[0], "the plugin's line is named"
    if case != "forward_exit3_training":  # that one failed in training: its run folder stays, as after a crash
        assert list((tmp_path / "cwd").iterdir()) == [], "a refused command wrote files"


# ---------------------------------------------------------------- what a unit declares it supports
def _plain_unit():
    from torch import nn

    class Plain(nn.Module):
        def __init__(self, cin, cout, stride, options):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)

        def forward(self, x):
            return self.conv(x)

    return Plain


def test_a_plugin_unit_implements_only_the_placements_it_declares():
    from horesnet import build_model
    from horesnet.cli.info import units_table
    from horesnet.errors import ConfigError
    from horesnet.nn.units import register_unit

    register_unit("test_plain_original", _plain_unit(), convs=1, overwrite=True)
    register_unit("test_plain_any", _plain_unit(), convs=1, overwrite=True,
                  placements=("original", "full_preact"))
    build_model(unit="test_plain_original", depth=5, width=0.25)  # the default placement
    with pytest.raises(ConfigError, match=r"'test_plain_original' does not implement placement='full_preact'.*"
                                          r"valid for it: 'original'"):
        build_model(unit="test_plain_original", depth=5, width=0.25, placement="full_preact")
    build_model(unit="test_plain_any", depth=5, width=0.25, placement="full_preact")
    table = units_table()
    assert "test_plain_original" in table and "original,full_preact" in table and "placements" in table


def test_a_unit_declaring_zero_init_last_must_have_the_method():
    from horesnet import build_model
    from horesnet.errors import ConfigError
    from horesnet.nn.units import register_unit

    register_unit("test_plain_zero", _plain_unit(), convs=1, overwrite=True, zero_init_last=True)
    with pytest.raises(ConfigError, match=r"declares zero_init_last=True but .* no zero_init_last\(\) method"):
        build_model(unit="test_plain_zero", depth=5, width=0.25)
