"""The pure-torch executor of a bottleneck block: compute only where its masks sampled.

The training ("masked") forward computes every conv densely and multiplies by the masks; it is
the reference. This turns the masks into skipped work (docs/design.md, "Execution paths"):

1. BN is folded into the conv before it (:mod:`..fold`); feature maps are channels-last, so a
   position's channels are one contiguous row and positions are flat indices over (B, H, W).
2. conv1 + ReLU at the m1 positions (row gather, one GEMM), the other positions filled by the
   normalized Gaussian interpolation as a sparse matrix over the computed rows
   (:func:`~.rows.sampled_rows`).
3. conv2 at the m2 positions: integer 3x3 neighbour gather + GEMM, or for DCN the offsets at
   those positions (same gather on the block input) and the bilinear taps + GEMM
   (:func:`seg_sparse.ops.conv2d_at` / :func:`~seg_sparse.ops.deform_conv2d_at`).
4. conv3 + BN at the m2 positions, then the interpolation of conv3's output
   (:func:`~.rows.add_sampled_affine`): equal to the masked path's "interpolate, then conv3"
   (affine layer, normalized weights; the eps clamp handled by adding the BN shift once).
5. Residual add (downsample dense, BN folded) and ReLU over all positions.

Each layer is gathered only below the density ``gather_below`` and runs on the full map (still
folded, channels-last) above it; :mod:`.policy` decides it. The block is read through
:class:`ExecutableBlock`, so this module does not depend on the block's class.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ...ops import conv2d_at, deform_conv2d, deform_conv2d_at
from ..fold import fold_conv_bn
from .rows import FoldCache, add_sampled_affine, channels_last_rows, sampled_rows

#: Name of this backend's entries in a layer's :class:`~.rows.FoldCache`.
CACHE_NAME = "torch"


class Interpolation(Protocol):
    """What the executors read of a :class:`~seg_sparse.sampling.GaussianInterpolation`."""

    eps: float
    window: int

    def kernel_1d(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor: ...


class ExecutableBlock(Protocol):
    """What an executor reads of a bottleneck block (:class:`~..bottleneck.SparseBottleneck`).

    ``conv1`` / ``conv3``: 1x1 convs; ``conv2``: 3x3 (deformable when ``with_dcn``, its
    offsets from ``conv2_offset`` on the block input) with ``stride``, ``dilation`` (= padding)
    and ``groups``; ``bn*``: eval BatchNorms; ``downsample``: None or the residual branch;
    ``interp1`` / ``interp2``: the masks' interpolations; ``fold_cache``: where executors keep
    folded weights.
    """

    conv1: nn.Conv2d
    bn1: nn.Module
    conv2: nn.Conv2d
    bn2: nn.Module
    conv3: nn.Conv2d
    bn3: nn.Module
    downsample: nn.Module | None
    interp1: Interpolation
    interp2: Interpolation
    stride: int
    dilation: int
    groups: int
    with_dcn: bool
    fold_cache: FoldCache

    def parameters(self, recurse: bool = True): ...  # noqa: ANN201 (nn.Module's)

    def buffers(self, recurse: bool = True): ...  # noqa: ANN201


@dataclass
class FoldedBlock:
    """Inference weights of one block: BN folded, laid out for row GEMMs."""

    w1: torch.Tensor  # (Cin, P)
    b1: torch.Tensor
    w2: torch.Tensor  # (Cout, Cin/g, 3, 3)
    b2: torch.Tensor
    w3: torch.Tensor  # (P, 4P)
    b3: torch.Tensor
    offset_w: torch.Tensor | None  # (18, Cin, 3, 3)
    offset_b: torch.Tensor | None
    down_w: torch.Tensor | None  # (Cin, 4P) of a folded 1x1 downsample
    down_b: torch.Tensor | None


def _fold_downsample(down: nn.Module | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A (1x1 conv, BN) downsample folded into (Cin, Cout) + bias; anything else: (None, None)."""
    if not (isinstance(down, nn.Sequential) and len(down) == 2):
        return None, None
    conv, bn = down
    if not (isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.groups == 1
            and conv.padding == (0, 0) and isinstance(bn, nn.modules.batchnorm._BatchNorm)):
        return None, None
    w, b = fold_conv_bn(conv.weight, bn, conv.bias)
    return w.flatten(1).t().contiguous(), b


def fold_block(block: ExecutableBlock) -> FoldedBlock:
    """Fold every BN of ``block`` into its conv (eval statistics)."""
    w1, b1 = fold_conv_bn(block.conv1.weight, block.bn1)
    w2, b2 = fold_conv_bn(block.conv2.weight, block.bn2)
    w3, b3 = fold_conv_bn(block.conv3.weight, block.bn3)
    offset_w = offset_b = None
    if block.with_dcn:
        offset_w, offset_b = block.conv2_offset.weight, block.conv2_offset.bias
    down_w, down_b = _fold_downsample(block.downsample)
    return FoldedBlock(
        w1=w1.flatten(1).t().contiguous(), b1=b1, w2=w2.contiguous(), b2=b2,
        w3=w3.flatten(1).t().contiguous(), b3=b3, offset_w=offset_w, offset_b=offset_b,
        down_w=down_w, down_b=down_b,
    )


def folded_block(block: ExecutableBlock) -> FoldedBlock:
    """``block``'s folded weights, cached until one of its parameters or buffers changes."""
    return block.fold_cache.get(block, CACHE_NAME, lambda: fold_block(block))


@torch.no_grad()
def run_block(block: ExecutableBlock, x: torch.Tensor, mask1: torch.Tensor | None,
              mask2: torch.Tensor | None, gather_below: float) -> torch.Tensor:
    """Block output for channels-last input ``x`` (B, C, H, W) and masks (None: ones)."""
    fw = folded_block(block)
    b, _, h, w = x.shape
    h1 = _conv1(fw, block, channels_last_rows(x), mask1, gather_below).view(b, h, w, -1)
    out_hw = ((h - 1) // block.stride + 1, (w - 1) // block.stride + 1)
    out = _identity_plus_shift(fw, block, x)  # + b3: conv3's BN shift, added once
    _add_conv3(out, fw, block, x, h1, mask2, out_hw, gather_below)
    return out.relu_().view(b, *out_hw, -1).permute(0, 3, 1, 2)


def _conv1(fw: FoldedBlock, block: ExecutableBlock, rows: torch.Tensor,
           mask: torch.Tensor | None, gather_below: float) -> torch.Tensor:
    """conv1 + BN + ReLU, interpolated where m1 did not sample: (B*H*W, P) rows."""
    return sampled_rows(
        lambda index: torch.addmm(fw.b1, rows.index_select(0, index), fw.w1).relu_(),
        lambda: torch.addmm(fw.b1, rows, fw.w1).relu_(),
        rows.shape[0], mask, None if mask is None else block.interp1, gather_below)


def _conv2_dense(fw: FoldedBlock, block: ExecutableBlock, x: torch.Tensor,
                 h1: torch.Tensor) -> torch.Tensor:
    """conv2 + BN + ReLU on the full map: (B*H2*W2, P) rows."""
    feats = h1.permute(0, 3, 1, 2)
    geometry = dict(stride=block.stride, padding=block.dilation, dilation=block.dilation)
    if block.with_dcn:
        offset = F.conv2d(x, fw.offset_w, fw.offset_b, **geometry)
        out = deform_conv2d(feats.contiguous(), offset, fw.w2, fw.b2, **geometry)
    else:
        out = F.conv2d(feats, fw.w2, fw.b2, groups=block.groups, **geometry)
    return out.relu_().permute(0, 2, 3, 1).reshape(-1, out.shape[1])


def _conv2_at(fw: FoldedBlock, block: ExecutableBlock, x: torch.Tensor, h1: torch.Tensor,
              index: torch.Tensor) -> torch.Tensor:
    """conv2 + BN + ReLU at flat output positions ``index``: (N, P) rows (for DCN the
    offsets are computed at those positions too)."""
    geometry = dict(stride=block.stride, padding=block.dilation, dilation=block.dilation)
    if block.with_dcn:
        offset = conv2d_at(x.permute(0, 2, 3, 1), index, fw.offset_w, fw.offset_b, **geometry,
                           check_positions=False)
        out = deform_conv2d_at(h1, index, offset, fw.w2, fw.b2, **geometry,
                               check_positions=False)
    else:
        out = conv2d_at(h1, index, fw.w2, fw.b2, **geometry, check_positions=False)
    return out.relu_()


def _add_conv3(out: torch.Tensor, fw: FoldedBlock, block: ExecutableBlock, x: torch.Tensor,
               h1: torch.Tensor, mask: torch.Tensor | None, out_hw: tuple[int, int],
               gather_below: float) -> None:
    """Add conv3's output (without its BN shift), interpolated where m2 did not sample, to
    ``out`` (B*H2*W2, 4P) rows.

    ``out`` already holds the shift b3 at every position (see :func:`add_sampled_affine`).
    """
    if mask is not None and mask.shape[-2:] != out_hw:
        raise RuntimeError(f"mask2 of shape {tuple(mask.shape)} does not match conv2's output "
                           f"size {out_hw}")
    add_sampled_affine(out, partial(_conv2_at, fw, block, x, h1),
                       partial(_conv2_dense, fw, block, x, h1), fw.w3, mask,
                       None if mask is None else block.interp2, gather_below)


def _identity_plus_shift(fw: FoldedBlock, block: ExecutableBlock,
                         x: torch.Tensor) -> torch.Tensor:
    """A new (B*H2*W2, 4P) tensor: the residual branch plus conv3's BN shift b3."""
    if block.downsample is None:
        return channels_last_rows(x) + fw.b3
    if fw.down_w is None:
        down = block.downsample(x).contiguous(memory_format=torch.channels_last)
        return channels_last_rows(down) + fw.b3
    s = block.downsample[0].stride
    sub = x[:, :, :: s[0], :: s[1]] if s != (1, 1) else x
    return torch.addmm(fw.down_b + fw.b3, channels_last_rows(sub), fw.down_w)
