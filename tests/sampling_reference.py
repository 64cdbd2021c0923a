"""Independent reference computations of the sampling block, written from docs/design.md
("The method as implemented").

Deliberately unlike the implementation: the Gaussian weights are summed position by position
over the window (not two separable conv passes) and divided without any eps, so these helpers
are only valid where every unsampled position has a sampled neighbour in reach -- callers
build their masks so, and :func:`interp_reference` checks it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from seg_sparse.benchmark.gpu_check import randomize_bn


def make_block(sampler="stochastic", stride=1, dilation=1, with_dcn=False, seed=0, **kw):
    """A tiny block (16 -> 4 -> 16 channels) with randomised BN statistics and DCN offsets."""
    from seg_sparse.sampling import SparseBottleneck

    torch.manual_seed(seed)
    downsample = None
    if stride != 1:
        downsample = nn.Sequential(nn.Conv2d(16, 16, 1, stride, bias=False), nn.BatchNorm2d(16))
    block = SparseBottleneck(16, 4, stride=stride, dilation=dilation, downsample=downsample,
                             with_dcn=with_dcn, sampler=sampler, max_iters=100, **kw)
    randomize_bn(block)
    if with_dcn:
        nn.init.normal_(block.conv2_offset.weight, std=0.3)  # real deformations
    return block


def drawn_mask(shape: tuple[int, ...], density: float, grid: int | None,
               generator: torch.Generator) -> torch.Tensor:
    """A stochastic test-time mask at probability ``density`` with the grid prior applied,
    drawn once; density 0 without grid: nothing sampled, 0 with grid: only the grid."""
    from seg_sparse.sampling import apply_grid_prior, build_sampler

    if density in (0.0, 1.0):
        mask = torch.full(shape, density)
    else:
        logits = torch.full(shape, float(torch.logit(torch.tensor(density))))
        mask = build_sampler("stochastic")(logits, False, 1.0, generator).mask
    return apply_grid_prior(mask, grid)


def interp_reference(feat: torch.Tensor, mask: torch.Tensor, s: float,
                     window: int = 7) -> torch.Tensor:
    """M*F + (1 - M) * sum_d G(d) M F / sum_d G(d) M, summed over the window's offsets d."""
    r = window // 2
    h, w = feat.shape[-2:]
    padded_mf = F.pad(mask * feat, (r, r, r, r))
    padded_m = F.pad(mask, (r, r, r, r))
    num = torch.zeros_like(feat)
    den = torch.zeros_like(mask)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            g = s * s / (2 * math.pi) * math.exp(-s * s * (dy * dy + dx * dx) / 2)
            num = num + g * padded_mf[..., r + dy:r + dy + h, r + dx:r + dx + w]
            den = den + g * padded_m[..., r + dy:r + dy + h, r + dx:r + dx + w]
    assert den[mask < 1].min() > 1e-4, "reference needs a sampled neighbour in reach everywhere"
    return mask * feat + (1 - mask) * num / den


def grid_reference(h: int, w: int, k: int) -> torch.Tensor:
    """(1, 1, h, w) float map, 1 where row and column are multiples of ``k``."""
    grid = torch.zeros(1, 1, h, w)
    grid[..., ::k, ::k] = 1
    return grid


def _bn(mod: nn.BatchNorm2d, t: torch.Tensor, training: bool) -> torch.Tensor:
    return F.batch_norm(t, mod.running_mean.clone(), mod.running_var.clone(), mod.weight,
                        mod.bias, training, 0.0, mod.eps)


def bottleneck_reference(block: nn.Module, x: torch.Tensor, m1: torch.Tensor,
                         m2: torch.Tensor, training: bool) -> torch.Tensor:
    """The block's forward with given masks m1 / m2 (grid prior included by the caller):

    x -> conv1 -> bn1 -> relu -> interp(m1) -> conv2 (DCN, offsets from x) -> bn2 -> relu
      -> interp(m2) -> conv3 -> bn3 -> + identity -> relu
    """
    stride, dil = block.stride, block.dilation
    out = F.relu(_bn(block.bn1, F.conv2d(x, block.conv1.weight), training))
    out = interp_reference(out, m1, block.interp1.scale.item(), block.interp1.window)
    if block.with_dcn:
        offset = F.conv2d(x, block.conv2_offset.weight, block.conv2_offset.bias,
                          stride=stride, padding=dil, dilation=dil)
        out = deform_conv2d(out, offset, block.conv2.weight, stride=stride, padding=dil,
                            dilation=dil)
    else:
        out = F.conv2d(out, block.conv2.weight, stride=stride, padding=dil, dilation=dil,
                       groups=block.conv2.groups)
    out = F.relu(_bn(block.bn2, out, training))
    out = interp_reference(out, m2, block.interp2.scale.item(), block.interp2.window)
    out = _bn(block.bn3, F.conv2d(out, block.conv3.weight), training)
    identity = x
    if block.downsample is not None:
        conv, bn = block.downsample
        identity = _bn(bn, F.conv2d(x, conv.weight, stride=conv.stride), training)
    return F.relu(out + identity)
