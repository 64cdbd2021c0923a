"""Fold an eval-mode BatchNorm into the conv before it (inference only).

Sparse execution computes convs as GEMMs over gathered rows; folding saves one pass over every
output and lets the bias ride in the GEMM (``addmm``). The arithmetic is torch's
(``torch.nn.utils.fusion.fuse_conv_bn_weights``); this module only checks what it is given.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights


def fold_conv_bn(
    weight: torch.Tensor, bn: nn.Module, bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight', bias') with conv(x, weight', bias') == bn(conv(x, weight, bias)) in eval."""
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
        raise TypeError(f"expected a BatchNorm layer to fold, got {type(bn).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics")
    folded, shift = fuse_conv_bn_weights(weight, bias, bn.running_mean, bn.running_var, bn.eps,
                                         bn.weight, bn.bias)
    return folded.detach(), shift.detach()
