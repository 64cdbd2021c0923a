"""Plain-torch sampling primitives and the sparse bottleneck (no mmseg / mmcv imports).

Public API (interface used by ``seg_sparse.models``; see each module for details):

* :class:`MaskPredictor` -- 3x3 conv -> 1 logit channel, weight 0 / bias 3.
* :func:`build_sampler` (``'stochastic'``, ``'deterministic'``, ``'relu'``, ``'dense'``) ->
  :class:`MaskSampler`; ``sampler(z, training, temperature, generator) -> SampleResult``.
* :class:`GumbelTemperature` -- buffers ``value`` / ``iteration``; ``set_iter(i)``, ``step()``.
* :func:`grid_prior_mask`, :func:`apply_grid_prior` -- always-sampled lattice (k = 11).
* :class:`GaussianInterpolation` -- normalized separable Gaussian RBF interpolation.
* :class:`SparseBottleneck`, :class:`SamplingOutput`.
* :func:`sparse_blocks`, :func:`sparsity_loss`, :func:`block_densities`, :func:`mask_density`,
  :func:`set_temperature_iter`, :func:`set_sampling_generator`.

Additions to the agreed interface (nothing removed or renamed):

* ``SparseBottleneck.reset_sampling_parameters()`` re-applies the zero / bias-3 / bandwidth
  initialisation of the new layers; call it after an init_cfg that re-initialises all
  ``nn.Conv2d`` (mmengine's Kaiming init would otherwise overwrite the mask predictors and
  the DCN offset conv).
* ``SparseBottleneck.is_dense``; for ``dense`` blocks ``last_sampling`` holds ones (not None).
* ``MaskSampler.is_dense`` / ``MaskSampler.uses_temperature`` (False for relu / dense: they
  ignore T, though relu blocks still carry a ``temperature`` buffer like every sampling block).
* ``MaskSampler.computed(mask)`` (the positions a mask computes: relu's support g > 0) and
  :func:`mask_density` (their per-image fraction), used by ``block_densities`` and the figures.
* ``GumbelTemperature.reschedule(max_iters)`` re-targets the schedule's end in place.
* ``SparseBottleneck(..., groups=1, width=None)`` (last, optional): the ResNeXt variant --
  conv1/conv2/conv3 at ``width`` channels, conv2 grouped; defaults give the ResNet block.
* ``check_grid_interval`` validates a grid setting (blocks call it at construction).
* Deep-copying / pickling a block drops ``last_sampling`` (its autograd graph cannot be copied).
* ``sparsity_loss`` / ``block_densities`` accept ``(name, block)`` pairs or plain blocks;
  ``sparsity_loss`` skips dense blocks (zero scalar when nothing samples).

Choices and deviations from DESIGN.md section 1 (details in the module docstrings):

* interpolation divides by ``max(G*M, eps)`` instead of ``G*M + eps`` (exact on constant fields
  where G*M >= eps, which at the initial bandwidth s = 3 means a sampled position in the 3x3
  neighbourhood; both forms give 0 with no sampled position in the window) --
  interpolation.py;
* the ``relu`` baseline is the gate g = 1 - exp(-relu(z)): mask g in training and at test,
  density = fraction of positions with g > 0, loss probability g -- samplers.py;
* the grid prior forces mask positions to 1 in training (soft masks) and at test alike; the
  probabilities fed to the sparsity loss are left untouched;
* both mask predictors are undilated 3x3 convs, also in dilated blocks (as the authors');
* interpolation runs before conv3 (on P channels, a quarter of the cost of interpolating
  conv3's output). In eval, where conv3 + bn3 is affine, this equals computing conv3 + bn3
  where m2 is non-zero and interpolating afterwards, wherever G*M >= eps (normalized weights);
  in training it does not (bn3's batch statistics see the interpolated tensor).
"""

from .bottleneck import SamplingOutput, SparseBottleneck
from .execution import EXECUTION_MODES
from .grid import apply_grid_prior, check_grid_interval, grid_prior_mask
from .interpolation import GaussianInterpolation
from .masks import MaskPredictor
from .samplers import SAMPLERS, MaskSampler, SampleResult, build_sampler
from .stats import (
    block_densities,
    execution_mode,
    mask_density,
    set_execution,
    set_sampling_generator,
    set_temperature_iter,
    sparse_blocks,
    sparsity_loss,
)
from .temperature import GumbelTemperature

__all__ = [
    "EXECUTION_MODES",
    "SAMPLERS",
    "GaussianInterpolation",
    "GumbelTemperature",
    "MaskPredictor",
    "MaskSampler",
    "SampleResult",
    "SamplingOutput",
    "SparseBottleneck",
    "apply_grid_prior",
    "block_densities",
    "build_sampler",
    "check_grid_interval",
    "execution_mode",
    "grid_prior_mask",
    "mask_density",
    "set_execution",
    "set_sampling_generator",
    "set_temperature_iter",
    "sparse_blocks",
    "sparsity_loss",
]
