"""Sampling in a decode head: each conv of an FCN-style head computed where a learned mask says.

An FCN-style head runs ``convs`` in sequence (conv + BN + ReLU each), optionally one more conv
over the head input concatenated with their output (``concat_input``), then a 1x1 classifier.
In the FCN-R50-D8 this head costs about as much as the whole backbone, so sampling only the
backbone caps the end-to-end saving (docs/sparse_head.md). :class:`HeadSampling` gives every
such conv what a backbone block gives its convs -- a mask predicted from the conv's input
(:class:`MaskPredictor`), the sampler, the grid prior, the Gaussian interpolation and the
annealed temperature -- and runs the head either way:

* masked (training, the reference): ``interp(relu(bn(conv(x))), m)`` for every conv, then
  the classifier on the last interpolated map;
* executed (inference): BN folded, every conv computed at its mask's positions only and the
  classifier only where its input was computed, its logits interpolated
  (:func:`~.execution.run_head`, or a faster backend's).

:meth:`HeadSampling.forward` chooses between the two (:meth:`SamplingLayer.executor`), so a
framework's head module only describes its layers (:class:`HeadLayers`) and calls it.

The layers themselves (convs, BNs, classifier) belong to the framework's head module (mmseg's
``FCNHead`` parameter names), which describes them with :class:`HeadLayers`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .interpolation import GaussianInterpolation
from .layer import SamplingLayer, resolve_options
from .options import SamplingOptions
from .predictors import MaskPredictor, paired_mask_logits
from .temperature import GumbelTemperature


@dataclass
class HeadSamplingOutput:
    """What one forward of a sampled head drew: per conv, the loss probability (B, 1, H, W)
    (with its graph) and the mask applied (soft in training, test masks as for the blocks;
    ones for the ``dense`` sampler)."""

    probs: tuple[torch.Tensor, ...]
    masks: tuple[torch.Tensor, ...]


@dataclass
class HeadLayers:
    """The layers of an FCN-style head, as the head module owns them.

    ``convs``: (conv, norm) per sampled conv in forward order, each followed by ReLU (norm a
    BatchNorm or None); ``concat_input``: the last conv reads ``cat([head input, previous
    output])``; ``classifier``: the 1x1 conv giving the logits. For the masked path,
    ``modules``: each conv's whole layer (conv, norm, ReLU) as the head runs it in training,
    and ``classify``: the head's classification step on the last features (dropout and the
    classifier).
    """

    convs: Sequence[tuple[nn.Conv2d, nn.Module | None]]
    concat_input: bool
    classifier: nn.Conv2d
    modules: Sequence[Callable[[torch.Tensor], torch.Tensor]]
    classify: Callable[[torch.Tensor], torch.Tensor]


def check_head_layers(layers: HeadLayers) -> None:
    """ValueError unless every sampled conv keeps the map's size (its mask is predicted at its
    input's size) and is foldable (BatchNorm or no norm), and the classifier is 1x1."""
    for conv, norm in layers.convs:
        k, pad, dil = conv.kernel_size, conv.padding, conv.dilation
        if conv.stride != (1, 1) or conv.groups != 1 or any(
                p != (kk // 2) * d or kk % 2 == 0 for kk, p, d in zip(k, pad, dil)):
            raise ValueError(f"head sampling needs stride-1, ungrouped, odd-kernel 'same' "
                             f"convs, got {conv}")
        if norm is not None and not isinstance(norm, nn.modules.batchnorm._BatchNorm):
            raise ValueError(f"head sampling folds BatchNorm (or no norm) into the convs, got "
                             f"{type(norm).__name__}")
    if layers.classifier.kernel_size != (1, 1):
        raise ValueError(f"head sampling needs a 1x1 classifier, got {layers.classifier}")


class HeadSampling(SamplingLayer):
    """The sampling layers of a head: one mask predictor and interpolation per sampled conv,
    a shared sampler, grid prior and temperature.

    Args:
        in_channels: input channels of each sampled conv (forward order).
        costs: multiply-accumulates per position of each conv, the classifier added to the
            last's; they weight the convs in :meth:`sparsity_term`.
        options: the :class:`SamplingOptions` (sampler, grid prior, window, temperature,
            execution) as for the blocks, with any of its fields given as keywords applied
            on top; sampler ``'dense'``: no sampling layers, the head's plain forward.
        loss_weight: weight of the head's term in the sparsity loss relative to the mean over
            the backbone's blocks (docs/sparse_head.md).
    """

    layer_kind = "head"

    def __init__(
        self,
        in_channels: Sequence[int],
        costs: Sequence[int],
        options: SamplingOptions | None = None,
        loss_weight: float = 1.0,
        **option_overrides: Any,
    ) -> None:
        options = resolve_options(options, option_overrides)
        super().__init__(options)
        if not in_channels or len(costs) != len(in_channels) or min(costs) <= 0:
            raise ValueError(f"head sampling needs one positive cost per sampled conv, got "
                             f"in_channels={list(in_channels)}, costs={list(costs)}")
        if not loss_weight >= 0:
            raise ValueError(f"head sampling loss_weight must be >= 0, got {loss_weight!r}")
        self.num_layers = len(in_channels)
        self.shares = tuple(c / sum(costs) for c in costs)
        self.loss_weight = float(loss_weight)
        self.last_sampling: HeadSamplingOutput | None = None
        self._drawn: list[tuple[torch.Tensor, torch.Tensor]] = []
        if not self.sampler.is_dense:
            self.masks = nn.ModuleList(MaskPredictor(c) for c in in_channels)
            self.interps = nn.ModuleList(
                GaussianInterpolation(window=options.interp_window) for _ in in_channels)
            self.temperature = GumbelTemperature(t0=options.t0, t_final=options.t_final,
                                                 max_iters=options.max_iters)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, layers={self.num_layers}, loss_weight={self.loss_weight}"

    def reset_sampling_parameters(self) -> None:
        """Predictors back to weight 0 / bias 3, bandwidths to 3 (after a framework init)."""
        if not self.is_dense:
            for module in (*self.masks, *self.interps):
                module.reset_parameters()

    def __getstate__(self) -> dict:
        state = super().__getstate__()  # graph-carrying tensors cannot be deep-copied
        state.update(last_sampling=None, _drawn=[])
        return state

    # -- one forward ---------------------------------------------------------------------------
    def sample(self, index: int, x: torch.Tensor) -> torch.Tensor | None:
        """The mask of sampled conv ``index`` from its input ``x`` (None for ``dense``); the
        first conv of a forward starts a new record, the last one completes
        ``last_sampling``."""
        if index == 0:
            self._drawn = []
        if self.is_dense:
            ones = x.new_ones(()).expand(x.shape[0], 1, *x.shape[-2:])
            self._drawn.append((ones, ones))
            mask = None
        else:
            (logits,) = paired_mask_logits((self.masks[index],), x)
            result = self.draw(index, logits)
            self._drawn.append((result.prob, result.mask))
            mask = result.mask
        if index == self.num_layers - 1:
            probs, masks = zip(*self._drawn)
            self.last_sampling = HeadSamplingOutput(tuple(probs), tuple(masks))
            self._drawn = []
        return mask

    def interpolate(self, index: int, features: torch.Tensor,
                    mask: torch.Tensor | None) -> torch.Tensor:
        """Masked path: fill conv ``index``'s output where ``mask`` did not sample."""
        return features if mask is None else self.interps[index](features, mask)

    def sparsity_term(self) -> torch.Tensor:
        """sum over convs of share * mean(p) from the last forward, shares proportional to each
        conv's cost per position (the backbone's 0.25 / 0.75 are its blocks' cost shares)."""
        if self.last_sampling is None:
            raise RuntimeError("the sampled head has not run a forward pass yet")
        return sum(s * p.mean() for s, p in zip(self.shares, self.last_sampling.probs))

    def forward(self, layers: HeadLayers, x: torch.Tensor, owner: nn.Module) -> torch.Tensor:
        """Logits of the head ``layers`` (owned by ``owner``) on its input ``x``: the masked
        path in training (and wherever :meth:`executor` says so), else computed only where
        each conv's mask sampled."""
        executor = self.executor(x, owner)
        if executor is not None:
            return executor.run_head(self, layers, x, owner)
        return layers.classify(self.masked_features(layers, x))

    def masked_features(self, layers: HeadLayers, x: torch.Tensor) -> torch.Tensor:
        """The training computation: each conv on the full map, interpolated by its mask."""
        if len(layers.modules) != self.num_layers:
            raise ValueError(f"{len(layers.modules)} head convs for {self.num_layers} masks")
        feats = x
        last = self.num_layers - 1
        for i, module in enumerate(layers.modules):
            inp = torch.cat([x, feats], dim=1) if layers.concat_input and i == last else feats
            mask = self.sample(i, inp)
            feats = self.interpolate(i, module(inp), mask)
        return feats
