"""Stochastic feature sampling and interpolation in plain torch (no mmseg / mmcv imports).

The method as implemented, and where it departs from the paper: docs/design.md.

* :class:`SparseBottleneck` -- a ResNet / ResNeXt bottleneck that samples the outputs of conv1
  and conv2 (``sampler='dense'``: the plain bottleneck); after each forward its
  ``last_sampling`` (:class:`SamplingOutput`) holds the probabilities and masks it used;
  ``reset_sampling_parameters()`` re-applies the initialisation of the sampling layers after a
  framework-wide conv init; ``set_generator()`` picks the noise generator.
* :class:`MaskPredictor` -- 3x3 conv to one logit per position, weight 0 / bias 3.
* :func:`build_sampler` (``'stochastic'``, ``'deterministic'``, ``'relu'``, ``'dense'``,
  :data:`SAMPLERS`) -> :class:`MaskSampler`; ``sampler(z, training, temperature, generator)``
  -> :class:`SampleResult` (``prob`` for the loss, ``mask`` for gating).
* :class:`GumbelTemperature` -- the annealed temperature (buffers ``value`` / ``iteration``;
  ``set_iter``, ``step``, ``reschedule``).
* :func:`grid_prior_mask`, :func:`apply_grid_prior`, :func:`check_grid_interval` -- the
  always-computed lattice.
* :class:`GaussianInterpolation` -- normalized separable Gaussian interpolation.
* :class:`SamplingLayer` -- what blocks and heads share (sampler, grid prior, execution
  mode, ``mask_override``, generator, ``draw``).
* :class:`HeadSampling` -- the same sampling for the convs of an FCN-style decode head
  (:class:`HeadLayers` describes them), masked and executed (:mod:`.head`).
* Over a whole model: :func:`sparse_blocks`, :func:`sampling_heads`,
  :func:`sampled_decode_head`, :func:`sampling_layers`, :func:`sparsity_loss`,
  :func:`block_densities`, :func:`computed_block_masks`, :func:`computed_head_masks`,
  :func:`set_temperature_iter`, :func:`set_sampling_generator`, :func:`sampling_generators`,
  :func:`mask_density` (fraction of positions a mask computes: relu's support g > 0).
* :func:`seeded_sampling` -- a compiled / exported model drawing from its layers' seeded
  generator (generators cannot enter a graph; :mod:`.rng`).
* :class:`SamplingOptions` -- the options every sampling layer and backbone takes (sampler,
  grid_interval, interp_window, t0, t_final, max_iters, execution), checked on assignment.
* Inference execution (:mod:`.execution`): ``layer.execution`` ``'masked'`` (the training
  computation), ``'sparse'`` (compute only at sampled positions), ``'auto'`` (default; sparse
  where it is faster); the executor backends per device and the one policy that picks them
  (:func:`~.execution.select_executor`); :func:`set_execution`, :func:`execution_mode`,
  :data:`EXECUTION_MODES`.
"""

from .bottleneck import SamplingOutput, SparseBottleneck
from .grid import apply_grid_prior, check_grid_interval, grid_prior_mask
from .head import HeadLayers, HeadSampling, HeadSamplingOutput, check_head_layers
from .interpolation import GaussianInterpolation
from .layer import SamplingLayer
from .model_layers import (
    execution_mode,
    sampled_decode_head,
    sampling_generators,
    sampling_heads,
    sampling_layers,
    set_execution,
    set_sampling_generator,
    set_temperature_iter,
    sparse_blocks,
)
from .options import EXECUTION_MODES, SamplingOptions, check_execution
from .predictors import MaskPredictor
from .rng import seeded_sampling
from .samplers import SAMPLERS, MaskSampler, SampleResult, build_sampler
from .sparsity import (
    block_densities,
    computed_block_masks,
    computed_head_masks,
    mask_density,
    sparsity_loss,
)
from .temperature import GumbelTemperature

__all__ = [
    "EXECUTION_MODES",
    "SAMPLERS",
    "GaussianInterpolation",
    "GumbelTemperature",
    "HeadLayers",
    "HeadSampling",
    "HeadSamplingOutput",
    "MaskPredictor",
    "MaskSampler",
    "SampleResult",
    "SamplingLayer",
    "SamplingOptions",
    "SamplingOutput",
    "SparseBottleneck",
    "apply_grid_prior",
    "block_densities",
    "computed_block_masks",
    "computed_head_masks",
    "build_sampler",
    "check_execution",
    "check_grid_interval",
    "check_head_layers",
    "execution_mode",
    "grid_prior_mask",
    "mask_density",
    "sampled_decode_head",
    "sampling_generators",
    "sampling_heads",
    "sampling_layers",
    "seeded_sampling",
    "set_execution",
    "set_sampling_generator",
    "set_temperature_iter",
    "sparse_blocks",
    "sparsity_loss",
]
