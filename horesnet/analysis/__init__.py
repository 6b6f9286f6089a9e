"""Analysis tools (docs/design.md, "Analysis"): lesions, paths, effective paths, responses, refinement, robustness.

Every tool takes a model built by horesnet (any scheme, nested, tied or plain) and evaluation data, and returns a
tidy table (a list of flat records). They use only the models' public introspection (``blocks()``, ``units()``,
``forward_stem``/``forward_final``/``forward_head``) and the blocks' hook interface (``horesnet.nn.hooks``).
Each study of ``python -m horesnet.analyze`` is registered with :func:`register_study`; importing this package
registers the built-in ones (docs/extending_studies.md).
"""

from . import studies  # noqa: F401 -- importing it registers the built-in studies
from .common import EvalData, error_and_loss, from_datamodule, write_table
from .effective import GradientRoute, effective_paths
from .lesion import kendall_tau, lesion_random, lesion_single, lesion_targets, reorder
from .paths import PathSampler, block_paths, block_polynomial, path_lengths
from .refinement import refinement
from .registry import Option, Study, builtin_studies, get_study, list_studies, register_study, unregister_study
from .responses import response_layers, responses
from .robustness import robustness

__all__ = [
    "EvalData", "GradientRoute", "Option", "PathSampler", "Study", "block_paths", "block_polynomial",
    "builtin_studies", "effective_paths", "error_and_loss", "from_datamodule", "get_study", "kendall_tau",
    "lesion_random", "lesion_single", "lesion_targets", "list_studies", "path_lengths", "refinement",
    "register_study", "reorder", "response_layers", "responses", "robustness", "unregister_study", "write_table",
]
