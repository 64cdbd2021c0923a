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
* executed (inference, :meth:`HeadSampling.execute`): BN folded, every conv computed at its
  mask's positions only (:func:`~.execution.sampled_rows`: row gather + GEMM, the rest
  interpolated), and the classifier only where its input was computed, its *logits*
  interpolated (:func:`~.execution.add_sampled_affine`): the classifier is 1x1 and the
  interpolation normalized, so this equals the masked path, on ``num_classes`` channels
  instead of the conv's.

The layers themselves (convs, BNs, classifier) belong to the framework's head module (mmseg's
``FCNHead`` parameter names), which describes them with :class:`HeadLayers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import conv2d_at
from .execution import FoldCache, add_sampled_affine, sampled_rows
from .fold import fold_conv_bn
from .interpolation import GaussianInterpolation
from .layer import SamplingLayer
from .masks import MaskPredictor, paired_mask_logits
from .temperature import GumbelTemperature

#: ``'auto'``'s crossover for head convs, per device type (the blocks' is
#: :data:`~.execution.GATHER_BELOW`). The paper's head convs read 2048-2560 channels; dense, a
#: 3x3 conv of theirs runs at about twice the rate of the GEMMs a gathered one needs (202 vs 105
#: GMAC/s, 2 CPU threads), so gathering pays only below about 0.4: the whole head at 512x1024
#: took 705 / 957 / 1131 ms gathered at density 0.3 / 0.4 / 0.5, 995 ms on the full map, 981 ms
#: dense (docs/sparse_head.md).
HEAD_GATHER_BELOW: dict[str, float] = {"cpu": 0.4}


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
    output])``; ``classifier``: the 1x1 conv giving the logits.
    """

    convs: Sequence[tuple[nn.Conv2d, nn.Module | None]]
    concat_input: bool
    classifier: nn.Conv2d


@dataclass
class _FoldedConv:
    weight: torch.Tensor  # (Cout, Cin, k, k), BN folded
    bias: torch.Tensor
    padding: tuple[int, int]
    dilation: tuple[int, int]

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """conv + ReLU over the full channels-last map ``x``: (B*H*W, Cout) rows."""
        out = F.conv2d(x, self.weight, self.bias, padding=self.padding, dilation=self.dilation)
        return out.relu_().permute(0, 2, 3, 1).reshape(-1, out.shape[1])

    def rows_at(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """conv + ReLU at flat positions ``index`` of the channels-last map ``x``."""
        return conv2d_at(x.permute(0, 2, 3, 1), index, self.weight, self.bias,
                         padding=self.padding, dilation=self.dilation,
                         check_positions=False).relu_()


@dataclass
class _FoldedHead:
    convs: list[_FoldedConv]
    classifier_w: torch.Tensor  # (C, K)
    classifier_b: torch.Tensor  # (K,)


def _fold_head(layers: HeadLayers) -> _FoldedHead:
    convs = []
    for conv, norm in layers.convs:
        if norm is None:
            weight = conv.weight
            bias = conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
        else:
            weight, bias = fold_conv_bn(conv.weight, norm, conv.bias)
        convs.append(_FoldedConv(weight.contiguous(), bias, tuple(conv.padding),
                                 tuple(conv.dilation)))
    cls = layers.classifier
    bias = cls.bias if cls.bias is not None else cls.weight.new_zeros(cls.out_channels)
    return _FoldedHead(convs, cls.weight.flatten(1).t().contiguous(), bias)


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
        sampler, grid_interval, interp_window, t0, t_final, max_iters: as for the blocks
            (:class:`~.bottleneck.SparseBottleneck`); ``'dense'``: no sampling layers, the
            head's plain forward.
        execution: ``'masked'``, ``'sparse'`` or ``'auto'`` at inference, as for the blocks.
        loss_weight: weight of the head's term in the sparsity loss relative to the mean over
            the backbone's blocks (docs/sparse_head.md).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        costs: Sequence[int],
        sampler: str = "stochastic",
        grid_interval: int | None = 11,
        interp_window: int = 7,
        t0: float = 1.0,
        t_final: float = 0.01,
        max_iters: int = 60000,
        execution: str = "auto",
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__(sampler, grid_interval, execution)
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
        self._cache = FoldCache()
        if not self.sampler.is_dense:
            self.masks = nn.ModuleList(MaskPredictor(c) for c in in_channels)
            self.interps = nn.ModuleList(
                GaussianInterpolation(window=interp_window) for _ in in_channels)
            self.temperature = GumbelTemperature(t0=t0, t_final=t_final, max_iters=max_iters)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, layers={self.num_layers}, loss_weight={self.loss_weight}"

    def reset_sampling_parameters(self) -> None:
        """Predictors back to weight 0 / bias 3, bandwidths to 3 (after a framework init)."""
        if not self.is_dense:
            for module in (*self.masks, *self.interps):
                module.reset_parameters()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()  # graph-carrying tensors cannot be deep-copied
        state.update(last_sampling=None, _drawn=[], _cache=FoldCache())
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

    @torch.no_grad()
    def execute(self, layers: HeadLayers, x: torch.Tensor, owner: nn.Module,
                gather_below: float) -> torch.Tensor:
        """Inference logits (B, K, H, W) of the head ``layers`` on its input ``x``, each conv
        computed where its mask sampled (module docstring); ``owner``: the module holding
        the layers (its parameters key the cache of folded weights)."""
        if len(layers.convs) != self.num_layers:
            raise ValueError(f"{len(layers.convs)} head convs for {self.num_layers} masks")
        folded = self._cache.get(owner, lambda: _fold_head(layers))
        x = x.contiguous(memory_format=torch.channels_last)
        b, _, h, w = x.shape
        total = b * h * w
        feats = x
        for i, conv in enumerate(folded.convs):
            inp = feats
            if layers.concat_input and i == self.num_layers - 1:
                inp = torch.cat([x, feats], 1).contiguous(memory_format=torch.channels_last)
            mask = self.sample(i, inp)
            interp = None if mask is None else self.interps[i]
            if i < self.num_layers - 1:
                rows = sampled_rows(partial(conv.rows_at, inp), partial(conv.rows, inp), total,
                                    mask, interp, gather_below)
                feats = rows.view(b, h, w, -1).permute(0, 3, 1, 2)
                continue
            logits = folded.classifier_b.expand(total, -1).clone()  # the bias, everywhere
            add_sampled_affine(logits, partial(conv.rows_at, inp), partial(conv.rows, inp),
                               folded.classifier_w, mask, interp, gather_below)
        return logits.view(b, h, w, -1).permute(0, 3, 1, 2)
