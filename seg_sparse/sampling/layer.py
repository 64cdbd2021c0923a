"""What every sampling layer shares -- a backbone block, a decode head: its sampler, grid prior,
inference execution mode, mask override and noise generator, and how it draws a mask."""

from __future__ import annotations

import torch
from torch import nn

from .execution import check_execution
from .grid import apply_grid_prior, check_grid_interval
from .samplers import MaskSampler, SampleResult, build_sampler
from .temperature import GumbelTemperature


class SamplingLayer(nn.Module):
    """Base of :class:`~.bottleneck.SparseBottleneck` and :class:`~.head.HeadSampling`.

    Subclasses own ``temperature`` (a :class:`GumbelTemperature`) unless the sampler is
    ``dense``, and call :meth:`draw` for each of their masks.
    """

    temperature: GumbelTemperature

    def __init__(self, sampler: str, grid_interval: int | None, execution: str) -> None:
        super().__init__()
        self.sampler: MaskSampler = build_sampler(sampler)
        check_grid_interval(grid_interval)
        self.grid_interval = grid_interval
        self.execution = check_execution(execution)
        #: one mask per mask of the layer to use instead of sampling (tests, benchmarks at
        #: set densities)
        self.mask_override: tuple[torch.Tensor, ...] | None = None
        self._generator: torch.Generator | None = None

    @property
    def is_dense(self) -> bool:
        """True for the ``dense`` sampler: no sampling layers, the plain forward."""
        return self.sampler.is_dense

    def extra_repr(self) -> str:
        return f"sampler={self.sampler.name!r}, grid_interval={self.grid_interval}"

    def set_generator(self, generator: torch.Generator | None) -> None:
        """Use ``generator`` for the sampling noise (None: torch's global RNG)."""
        self._generator = generator

    def draw(self, which: int, logits: torch.Tensor) -> SampleResult:
        """Probability (for the loss) and mask (for gating) of mask ``which`` from its logits:
        the sampler's draw with the grid prior forced in, or ``mask_override[which]``.

        The sampler always draws, so the random stream is the same with and without an
        override.
        """
        result = self.sampler(logits, self.training, self.temperature.value, self._generator)
        if self.mask_override is None:
            return SampleResult(result.prob, apply_grid_prior(result.mask, self.grid_interval))
        override = self.mask_override[which]
        if override.shape != logits.shape:
            raise ValueError(f"mask_override of shape {tuple(override.shape)} does not match the "
                             f"layer's mask shape {tuple(logits.shape)}")
        return SampleResult(result.prob, override.to(logits.dtype))
