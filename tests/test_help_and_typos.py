"""``fit --help`` lists every key README's commands use, and a mistyped key or value gets the closest valid one
("did you mean") before the list of valid choices."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from horesnet.cli.compose import compose
from horesnet.cli.help import fit_help
from horesnet.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _readme_fit_keys() -> set[str]:
    keys = set()
    for line in (ROOT / "README.md").read_text().splitlines():
        if "horesnet.fit" in line:
            keys |= {m for m in re.findall(r"\s([a-z_][\w.]*)=", line.split("#")[0]) if not m.startswith("hydra.")}
    return keys


def test_fit_help_lists_every_key_readme_uses():
    text = fit_help()
    keys = _readme_fit_keys()
    assert {"channels_last", "data.limit_val", "trainer.precision"} <= keys  # the parse found README's commands
    missing = sorted(k for k in keys if not re.search(rf"(^|\s){re.escape(k)}=", text, re.M))
    assert not missing, f"fit --help lacks {missing}, which README uses"


@pytest.mark.parametrize(("override", "suggestion"), [
    ("channels_lats=true", "'channels_last'"), ("data.limit_tset=5", "'data.limit_test'"),
    ("optim.lrr=0.1", "'optim.lr'"), ("block=rk44", "'rk4'"), ("placement=full_preactt", "'full_preact'"),
])
def test_a_typo_gets_the_closest_valid_name(override, suggestion):
    with pytest.raises(ConfigError, match=re.escape(f"did you mean {suggestion}?")):
        compose("fit", [override])


def test_no_suggestion_when_nothing_is_close():
    with pytest.raises(ConfigError) as err:
        compose("fit", ["zzzzzz=1"])
    assert "did you mean" not in str(err.value) and "valid options" in str(err.value)
