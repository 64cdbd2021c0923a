"""Plain-torch sampling primitives and the sparse bottleneck (no mmseg / mmcv imports).

Public API (interface used by ``seg_sparse.models``; see each module for details):

* :class:`MaskPredictor` -- 3x3 conv -> 1 logit channel, weight 0 / bias 3.
* :func:`build_sampler` (``'stochastic'``, ``'deterministic'``, ``'relu'``, ``'dense'``) ->
  :class:`MaskSampler`; ``sampler(z, training, temperature, generator) -> SampleResult``.
* :class:`GumbelTemperature` -- buffers ``value`` / ``iteration``; ``set_iter(i)``, ``step()``.
* :func:`grid_prior_mask`, :func:`apply_grid_prior` -- always-sampled lattice (k = 11).
* :class:`GaussianInterpolation` -- normalized separable Gaussian RBF interpolation.
* :class:`SparseBottleneck`, :class:`SamplingOutput`.
* :func:`sparse_blocks`, :func:`sparsity_loss`, :func:`block_densities`,
  :func:`set_temperature_iter`, :func:`set_sampling_generator`, :func:`sampling_generators`.

Additions to the agreed interface (nothing removed or renamed):

* ``SparseBottleneck.reset_sampling_parameters()`` re-applies the zero / bias-3 / bandwidth
  initialisation of the new layers; call it after an init_cfg that re-initialises all
  ``nn.Conv2d`` (mmengine's Kaiming init would otherwise overwrite the mask predictors and
  the DCN offset conv).
* ``SparseBottleneck.is_dense``; for ``dense`` blocks ``last_sampling`` holds ones (not None).
* ``MaskSampler.is_dense`` / ``MaskSampler.uses_temperature`` (False for relu / dense: they
  ignore T, though relu blocks still carry a ``temperature`` buffer like every sampling block).
* ``GumbelTemperature.reschedule(max_iters)`` re-targets the schedule's end in place.
* ``SparseBottleneck(..., groups=1, width=None)`` (last, optional): the ResNeXt variant --
  conv1/conv2/conv3 at ``width`` channels, conv2 grouped; defaults give the ResNet block.
* ``check_grid_interval`` validates a grid setting (blocks call it at construction).
* Deep-copying / pickling a block drops ``last_sampling`` (its autograd graph cannot be copied).
* ``sparsity_loss`` / ``block_densities`` accept ``(name, block)`` pairs or plain blocks;
  ``sparsity_loss`` skips dense blocks (zero scalar when nothing samples).

Choices and deviations from DESIGN.md section 1 (details in the module docstrings):

* interpolation divides by ``max(G*M, eps)`` instead of ``G*M + eps`` (exact on constant fields;
  identical where no sampled neighbour is in reach) -- interpolation.py;
* the ``relu`` baseline is the gate g = 1 - exp(-relu(z)) (train mask g, test mask 1[z > 0],
  loss probability g) -- samplers.py;
* the grid prior forces mask positions to 1 in training (soft masks) and at test alike; the
  probabilities fed to the sparsity loss are left untouched;
* interpolation runs before conv3 (on P channels, a quarter of the cost of interpolating
  conv3's output; equal to it in eval, where conv3 + bn3 is affine, wherever a sampled
  neighbour is in reach, because the interpolation weights are normalized).
"""

from .bottleneck import SamplingOutput, SparseBottleneck
from .grid import apply_grid_prior, check_grid_interval, grid_prior_mask
from .interpolation import GaussianInterpolation
from .masks import MaskPredictor
from .samplers import SAMPLERS, MaskSampler, SampleResult, build_sampler
from .stats import (
    block_densities,
    sampling_generators,
    set_sampling_generator,
    set_temperature_iter,
    sparse_blocks,
    sparsity_loss,
)
from .temperature import GumbelTemperature

__all__ = [
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
    "grid_prior_mask",
    "sampling_generators",
    "set_sampling_generator",
    "set_temperature_iter",
    "sparse_blocks",
    "sparsity_loss",
]
