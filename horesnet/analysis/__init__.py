"""Analysis tools (docs/design.md, "Analysis"): lesions, paths, effective paths, responses, refinement, robustness.

Every tool takes a model built by horesnet (any scheme, nested, tied or plain) and evaluation data, and returns a
tidy table (a list of flat records). They use only the models' public introspection (``blocks()``, ``units()``,
``forward_stem``/``forward_final``/``forward_head``) and the blocks' hook interface (``horesnet.nn.hooks``).
"""

from .common import EvalData, error_and_loss, from_datamodule, write_table
from .effective import GradientRoute, effective_paths
from .lesion import kendall_tau, lesion_random, lesion_single, lesion_targets, reorder
from .paths import PathSampler, block_paths, block_polynomial, path_lengths
from .refinement import refinement
from .responses import response_layers, responses
from .robustness import robustness

__all__ = [
    "EvalData", "GradientRoute", "PathSampler", "block_paths", "block_polynomial", "effective_paths", "error_and_loss",
    "from_datamodule", "kendall_tau", "lesion_random", "lesion_single", "lesion_targets", "path_lengths",
    "refinement", "reorder", "response_layers", "responses", "robustness", "write_table",
]
