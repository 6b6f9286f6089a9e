"""Reading the ``summary.json`` files of finished runs for ``compare``: every field it reads is validated by name
(type, finiteness, range) where it is read, and only regular files are opened (a FIFO named summary.json would block
forever)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import ConfigError
from ..runs import SUMMARY, check_version, find_runs


def load_runs(paths: list[str]) -> list[dict]:
    runs = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise ConfigError(f"{p!r} does not exist; give run folders or multirun roots that hold summary.json.")
        if not path.is_dir() and not path.is_file():
            raise ConfigError(f"{p!r} is neither a folder nor a regular file (a FIFO or device?); give run folders "
                              "or multirun roots that hold summary.json.")
        for f in find_runs([path]):
            try:
                s = json.loads(f.read_text())
            except (json.JSONDecodeError, OSError, UnicodeDecodeError) as err:
                raise ConfigError(f"{f} is not a readable {SUMMARY} ({err}).") from None
            if isinstance(s, dict):
                check_version(s, f)  # a newer horesnet's record: refused by its version, before its fields
            check_summary(s, f)
            s["_dir"] = str(f.parent)
            runs.append(s)
    if not runs:
        raise ConfigError(f"no finished runs (summary.json) under {', '.join(paths)}.")
    return runs


SUMMARY_FIELDS = {"status": str, "config": dict, "model": dict}
MODEL_FIELDS = {"params": int, "units_per_stage": list}
# the numbers compare reads: (dotted key, lowest, highest, required when finished); None: no bound
NUMBERS = (("test.test/acc1", 0.0, 1.0, True), ("val.val/acc1", 0.0, 1.0, True), ("wall_time_s", 0.0, None, False),
           ("images_per_sec", 0.0, None, False), ("model.macs", 0, None, False),
           ("model.residual_scale.mean", 0.0, None, False))


def dotted(tree, key: str):
    """``tree["a"]["b"]`` for ``key`` "a.b"; None where a part is missing or not a dict."""
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _number_problem(value, low, high) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"is {json.dumps(value)[:40]}, not a number"
    if not math.isfinite(value):
        return f"is {value}, not a finite number"
    if (low is not None and value < low) or (high is not None and value > high):
        return f"is {value}, outside [{low}, {high if high is not None else '∞'}]"
    return None


def check_summary(s, path) -> None:
    """Refuse a summary.json that horesnet.fit did not write (wrong type, missing fields)."""
    if not isinstance(s, dict):
        raise ConfigError(f"{path} is not a horesnet run summary: it holds a JSON {type(s).__name__}, not an object "
                          f"with the fields {', '.join(SUMMARY_FIELDS)}.")
    for fields, tree, where in ((SUMMARY_FIELDS, s, ""), (MODEL_FIELDS, s.get("model"), "model.")):
        for key, kind in fields.items():
            if not isinstance(tree, dict) or not isinstance(tree.get(key), kind):
                raise ConfigError(f"{path} is not a horesnet run summary: field {where}{key!r} is missing or not "
                                  f"a JSON {kind.__name__} (needed: {', '.join(where + k for k in fields)}).")
    for key in ("block", "depth"):
        if key not in s["config"]:
            raise ConfigError(f"{path} is not a horesnet run summary: config has no {key!r}.")
    m = s["model"]
    if m["params"] < 1 or not m["units_per_stage"] or not all(
            isinstance(u, int) and not isinstance(u, bool) and u >= 0 for u in m["units_per_stage"]):
        raise ConfigError(f"{path}: model.params ({m['params']}) must be >= 1 and model.units_per_stage "
                          f"({m['units_per_stage']!r}) a list of unit counts.")
    seed = s["config"].get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"{path}: config.seed is {seed!r}, not an integer.")
    for key, low, high, required in NUMBERS:
        value = dotted(s, key)
        if value is None and not (required and s["status"] == "finished"):
            continue
        problem = "is missing" if value is None else _number_problem(value, low, high)
        if problem:
            raise ConfigError(f"{path}: field {key!r} {problem} (horesnet.fit writes a finite number "
                              f"in [{low}, {high if high is not None else '∞'}]); the file is damaged or was not "
                              "written by horesnet.fit.")
