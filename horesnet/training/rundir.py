"""Where a run's folder is: a new timestamped folder, or the unfinished run that ``resume`` names (no heavy imports,
so that a bad command line is refused quickly)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from .. import runs


def run_dir_resolver(resume, base: str) -> str:
    """Hydra resolver for ``hydra.run.dir``: a new timestamped folder under ``base``, or, for ``resume=auto``,
    the newest unfinished run there (has ``checkpoints/last.ckpt`` and no ``summary.json``); for
    ``resume=PATH`` the run folder of that checkpoint."""
    fresh = f"{base}/{datetime.now():%Y-%m-%d_%H-%M-%S}"
    if resume in (None, "", "null"):
        return fresh
    if resume == "auto":
        unfinished = sorted(p for p in Path(base).glob("*") if runs.unfinished(p))
        return str(unfinished[-1]) if unfinished else fresh
    path = Path(str(resume)).expanduser()
    if path.is_file():
        return str(runs.run_folder_of(path))
    return str(path)
