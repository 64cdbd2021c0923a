"""Fold an eval-mode BatchNorm into the conv before it (inference only).

BN in eval is the affine map y = (x - mean) / sqrt(var + eps) * gamma + beta, so
``bn(conv(x, W)) == conv(x, W * s) + (beta - mean * s)`` with ``s = gamma / sqrt(var + eps)``.
Sparse execution computes convs as GEMMs over gathered rows; folding saves one pass over every
output and lets the bias ride in the GEMM (``addmm``).
"""

from __future__ import annotations

import torch
from torch import nn


def bn_scale_shift(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of an eval-mode BatchNorm: bn(x) = x * scale + shift, per channel."""
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
        raise TypeError(f"expected a BatchNorm layer to fold, got {type(bn).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def fold_conv_bn(
    weight: torch.Tensor, bn: nn.Module, bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight', bias') with conv(x, weight', bias') == bn(conv(x, weight, bias)) in eval."""
    scale, shift = bn_scale_shift(bn)
    folded = weight * scale.view(-1, *([1] * (weight.dim() - 1)))
    if bias is not None:
        shift = shift + bias * scale
    return folded, shift
