"""``python -m horesnet.fit block=rk4 depth=56``: train any variant with the He et al. 2015 recipe.

Hydra command line: top-level model keys (``block``, ``depth``, ``unit``, ...), config groups ``data``,
``optim``, ``trainer``, ``logger``; ``-m`` sweeps (``-m block=euler,midpoint,rk4 seed=0,1,2``). The whole
command line is checked before any output folder is created (exit status 2 for bad input); a run that diverges
stops with status ``diverged`` in its summary and exit status 3 (``docs/reliability.md``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import OmegaConf

from .errors import ConfigError
from .training.divergence import DivergedError
from .training.preflight import preflight
from .training.run import report, run_dir_resolver, run_fit, sweep_group

if not OmegaConf.has_resolver("horesnet_run_dir"):
    OmegaConf.register_new_resolver("horesnet_run_dir", run_dir_resolver, use_cache=True)


def _fail(err: Exception, status: int = 2) -> None:
    print(f"horesnet.fit: error: {err}", file=sys.stderr)
    sys.exit(status)


@hydra.main(config_path="configs", config_name="fit", version_base="1.3")
def _hydra_main(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig

    try:
        summary = run_fit(cfg, Path(HydraConfig.get().runtime.output_dir), sweep_group())
    except ConfigError as err:
        _fail(err)
    except DivergedError as err:  # summary.json says status "diverged"; exit status 3 tells scripts
        _fail(err, 3)
    if summary.get("is_global_zero", True):
        print(report(summary))


def main() -> None:
    argv = sys.argv[1:]
    if not any(a.startswith(("--cfg", "--help", "-h", "--info", "--hydra-help", "-c")) for a in argv):
        try:
            preflight("fit", argv)
        except ConfigError as err:
            _fail(err)
    _hydra_main()


if __name__ == "__main__":
    main()
