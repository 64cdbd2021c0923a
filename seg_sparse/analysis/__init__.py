"""The appendix experiments of the paper, one module each, behind the ``seg-sparse`` commands
``visualize``, ``sparsity``, ``curve``, ``stability`` and ``prune``.

* :mod:`.loading` -- config + checkpoint -> :class:`LoadedModel`; :func:`evaluate` -> mIoU,
  per-block densities and GFLOPs (the sparse metric of ``seg-sparse test``).
* :mod:`.sparsity` -- per-block density of conv1 / conv2 / conv3; :mod:`.sparsity_regions` --
  where the model computes: density on class boundaries vs interiors and per class.
* :mod:`.curve` -- GFLOPs vs accuracy points from result JSONs, grouped by method family.
* :mod:`.stability` -- N evaluations with different sampling seeds: mean / std.
* :mod:`.prune` -- global L1 pruning of backbone convs; GFLOPs of non-zero weights.
* :mod:`.visualize` -- mask figures on street scenes.
"""

from .curve import CurvePoint, ResultFileError, load_curve_points
from .loading import Evaluation, LoadedModel, evaluate, load_model, set_sampling_seed
from .prune import nonzero_weight_flops, prunable_convs, prune_backbone, run_pruning
from .sparsity import ModelSparsity, measure_sparsity
from .stability import StabilityResult, run_stability
from .visualize import find_images, visualize_images

__all__ = [
    "CurvePoint",
    "Evaluation",
    "LoadedModel",
    "ModelSparsity",
    "ResultFileError",
    "StabilityResult",
    "evaluate",
    "find_images",
    "load_curve_points",
    "load_model",
    "measure_sparsity",
    "nonzero_weight_flops",
    "prunable_convs",
    "prune_backbone",
    "run_pruning",
    "run_stability",
    "set_sampling_seed",
    "visualize_images",
]
