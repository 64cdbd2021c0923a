"""The pure-torch executor of a sampled FCN-style head: each conv only where its mask sampled.

BN is folded into every conv; conv i runs at its mask's positions (row gather + GEMM, or one
GEMM per kernel point for the head's wide inputs, :func:`seg_sparse.ops.conv2d_at`) and is
interpolated elsewhere (:func:`~.rows.sampled_rows`); the 1x1 classifier runs only where the
last conv was computed and its *logits* are interpolated (:func:`~.rows.add_sampled_affine`):
the classifier is affine and the interpolation normalized, so this equals the masked path,
on ``num_classes`` channels instead of the conv's. The head and its sampling are read through
:class:`ExecutableHead` / :class:`HeadLayersLike`, so this module does not depend on their
classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ...ops import conv2d_at
from ..fold import fold_conv_bn
from .block import CACHE_NAME, Interpolation
from .rows import FoldCache, add_sampled_affine, sampled_rows


class HeadLayersLike(Protocol):
    """The layers of an FCN-style head (:class:`~..head.HeadLayers`)."""

    convs: Sequence[tuple[nn.Conv2d, nn.Module | None]]
    concat_input: bool
    classifier: nn.Conv2d


class ExecutableHead(Protocol):
    """What the executor reads of a head's sampling (:class:`~..head.HeadSampling`)."""

    num_layers: int
    interps: Sequence[Interpolation]
    fold_cache: FoldCache

    def sample(self, index: int, x: torch.Tensor) -> torch.Tensor | None: ...


@dataclass
class FoldedConv:
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
class FoldedHead:
    convs: list[FoldedConv]
    classifier_w: torch.Tensor  # (C, K)
    classifier_b: torch.Tensor  # (K,)


def fold_head(layers: HeadLayersLike) -> FoldedHead:
    """Every conv's BN folded into it, the classifier as a (C, K) matrix (eval statistics)."""
    convs = []
    for conv, norm in layers.convs:
        if norm is None:
            weight = conv.weight
            bias = conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
        else:
            weight, bias = fold_conv_bn(conv.weight, norm, conv.bias)
        convs.append(FoldedConv(weight.contiguous(), bias, tuple(conv.padding),
                                 tuple(conv.dilation)))
    cls = layers.classifier
    bias = cls.bias if cls.bias is not None else cls.weight.new_zeros(cls.out_channels)
    return FoldedHead(convs, cls.weight.flatten(1).t().contiguous(), bias)


@torch.no_grad()
def run_head(sampling: ExecutableHead, layers: HeadLayersLike, x: torch.Tensor,
             owner: nn.Module, gather_below: float) -> torch.Tensor:
    """Inference logits (B, K, H, W) of the head ``layers`` on its input ``x``, each conv
    computed where its mask sampled (module docstring); ``owner``: the module holding the
    layers (its parameters key the cache of folded weights)."""
    if len(layers.convs) != sampling.num_layers:
        raise ValueError(f"{len(layers.convs)} head convs for {sampling.num_layers} masks")
    folded = sampling.fold_cache.get(owner, CACHE_NAME, lambda: fold_head(layers))
    x = x.contiguous(memory_format=torch.channels_last)
    b, _, h, w = x.shape
    total = b * h * w
    feats = x
    last = sampling.num_layers - 1
    for i, conv in enumerate(folded.convs):
        inp = feats
        if layers.concat_input and i == last:
            inp = torch.cat([x, feats], 1).contiguous(memory_format=torch.channels_last)
        mask = sampling.sample(i, inp)
        interp = None if mask is None else sampling.interps[i]
        if i < last:
            rows = sampled_rows(partial(conv.rows_at, inp), partial(conv.rows, inp), total,
                                mask, interp, gather_below)
            feats = rows.view(b, h, w, -1).permute(0, 3, 1, 2)
            continue
        logits = folded.classifier_b.expand(total, -1).clone()  # the bias, everywhere
        add_sampled_affine(logits, partial(conv.rows_at, inp), partial(conv.rows, inp),
                           folded.classifier_w, mask, interp, gather_below)
    return logits.view(b, h, w, -1).permute(0, 3, 1, 2)
