"""What every sampling layer shares -- a backbone block, a decode head: its options (sampler,
grid prior, execution mode, ...), mask override and noise generator, how it draws a mask and how
it picks its inference path."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .execution import Executor, FoldCache, needs_grad, select_executor
from .execution.policy import LayerKind
from .grid import apply_grid_prior
from .options import SamplingOptions
from .rng import generator_is_global
from .samplers import MaskSampler, SampleResult, build_sampler
from .temperature import GumbelTemperature


def resolve_options(options: SamplingOptions | None, overrides: dict[str, Any]) -> SamplingOptions:
    """A layer's own copy of ``options`` (default: :class:`SamplingOptions`'s defaults) with
    ``overrides`` (sampling option keywords) applied and checked."""
    return (options or SamplingOptions()).replace(**overrides)


class SamplingLayer(nn.Module):
    """Base of :class:`~.bottleneck.SparseBottleneck` and :class:`~.head.HeadSampling`.

    Subclasses own ``temperature`` (a :class:`GumbelTemperature`) unless the sampler is
    ``dense``, and call :meth:`draw` for each of their masks and :meth:`executor` to choose
    between the masked path and an executor. ``options`` is the layer's own
    :class:`SamplingOptions` (``execution`` and ``grid_interval`` may change later, checked on
    assignment; the sampler and the layer shapes are fixed at construction).
    """

    temperature: GumbelTemperature
    #: the executors' name for this kind of layer (their crossover densities differ)
    layer_kind: LayerKind = "block"

    def __init__(self, options: SamplingOptions) -> None:
        super().__init__()
        self.options = options
        self.sampler: MaskSampler = build_sampler(options.sampler)
        #: one mask per mask of the layer to use instead of sampling (tests, benchmarks at
        #: set densities)
        self.mask_override: tuple[torch.Tensor, ...] | None = None
        self._generator: torch.Generator | None = None
        #: folded inference weights per execution backend
        self.fold_cache = FoldCache()

    @property
    def execution(self) -> str:
        """Inference path: ``'auto'``, ``'sparse'`` or ``'masked'`` (checked on assignment)."""
        return self.options.execution

    @execution.setter
    def execution(self, mode: str) -> None:
        self.options.execution = mode

    @property
    def grid_interval(self) -> int | None:
        return self.options.grid_interval

    @grid_interval.setter
    def grid_interval(self, interval: int | None) -> None:
        self.options.grid_interval = interval

    @property
    def is_dense(self) -> bool:
        """True for the ``dense`` sampler: no sampling layers, the plain forward."""
        return self.sampler.is_dense

    def extra_repr(self) -> str:
        return f"sampler={self.sampler.name!r}, grid_interval={self.grid_interval}"

    def __getstate__(self) -> dict:
        # copies (deepcopy, pickle) rebuild folded weights on demand
        state = self.__dict__.copy()
        state["fold_cache"] = FoldCache()
        return state

    def set_generator(self, generator: torch.Generator | None) -> None:
        """Use ``generator`` for the sampling noise (None: torch's global RNG)."""
        self._generator = generator

    def executor(self, x: torch.Tensor, owner: nn.Module | None = None) -> Executor | None:
        """How this call runs: an executor, or None for the masked path (training, tracing,
        ``'masked'``, a call that needs gradients; :func:`~.execution.select_executor`).
        ``owner``: the module whose parameters the call uses (default: this layer)."""
        return select_executor(self.execution, self.training, not self.is_dense, x.device,
                               self.layer_kind, needs_grad(owner or self, x))

    def draw(self, which: int, logits: torch.Tensor) -> SampleResult:
        """Probability (for the loss) and mask (for gating) of mask ``which`` from its logits:
        the sampler's draw with the grid prior forced in, or ``mask_override[which]``.

        The sampler always draws, so the random stream is the same with and without an
        override. Compiled or exported, the noise comes from torch's global RNG; a layer with a
        generator draws from it there only inside :func:`~.rng.seeded_sampling`, else eagerly
        (a graph break per mask, :meth:`_draw_with_generator`).
        """
        generator = self._generator
        if generator is not None and (generator_is_global() or torch.compiler.is_compiling()):
            if not generator_is_global():
                return self._draw_with_generator(which, logits)
            generator = None  # it drives the global RNG now, for eager layers too
        result = self.sampler(logits, self.training, self.temperature.value, generator)
        if self.mask_override is None:
            return SampleResult(result.prob, apply_grid_prior(result.mask, self.grid_interval))
        override = self.mask_override[which]
        if override.shape != logits.shape:
            raise ValueError(f"mask_override of shape {tuple(override.shape)} does not match the "
                             f"layer's mask shape {tuple(logits.shape)}")
        return SampleResult(result.prob, override.to(logits.dtype))

    @torch.compiler.disable
    def _draw_with_generator(self, which: int, logits: torch.Tensor) -> SampleResult:
        """:meth:`draw` run eagerly from a compiled graph, so the layer's generator is used as
        in eager mode (the graph breaks around it; :func:`~.rng.seeded_sampling` avoids it)."""
        return self.draw(which, logits)
