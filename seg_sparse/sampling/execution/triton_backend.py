"""The Triton backend: blocks and sampled heads on the kernels of :mod:`seg_sparse.ops.triton`.

The torch backend's computation (:mod:`.block`, :mod:`.head`; docs/design.md "Execution
paths"), written so that a block runs without a host synchronisation (docs/gpu.md):

1. BN folded into the convs (:func:`.block.fold_block`), weights cast to the compute dtype
   (the autocast dtype under ``torch.autocast``, else the input's) and laid out for the
   kernels, the interpolation taps on the device: cached in the layer's fold cache per dtype
   until a parameter or buffer changes.
2. Each mask's positions compacted on the device
   (:func:`~seg_sparse.ops.triton.compact_positions`: buffers of capacity B*H*W, the count on
   the device; kernels launched over the capacity return early past the count).
3. conv1 + BN + ReLU at the m1 positions (gathered GEMM, compact rows), then the interpolation
   fill writes every position of the conv1 map from them.
4. For DCN the offsets at the m2 positions (implicit-GEMM 3x3 conv on the block input), then
   conv2 + BN + ReLU at those positions (implicit GEMM, bilinear taps for DCN), conv3 (GEMM on
   the compact rows), and one fill pass writes the block output: conv3's rows interpolated
   where m2 did not sample, plus the residual (identity, or the downsample GEMM), the BN
   shifts, ReLU.

A layer whose mask density is at or above ``gather_below`` runs on the full map instead (torch
convs / the GEMM kernel over all rows; the same fill applies the mask): that choice reads the
count, one host sync per mask, so it is made only for ``0 < gather_below <= 1``;
``gather_below > 1`` (``'sparse'``) gathers every layer and ``<= 0`` none, without a sync.
Layers of the ``dense`` sampler (no masks) run the torch backend's path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...ops import deform_conv2d
from ...ops.cpu.taps import ConvGeometry
from ...ops.triton import (
    ConvWeights,
    FillTaps,
    Positions,
    compact_positions,
    conv2d_at_positions,
    gathered_linear,
    interpolate_fill,
)
from ..sparse_interpolation import kernel_taps
from . import block as torch_block
from . import head as torch_head
from .block import ExecutableBlock, Interpolation, fold_block
from .head import ExecutableHead, HeadLayersLike, fold_head
from .policy import ExecutionBackend
from .rows import channels_last_rows

#: Name of this backend's entries in a layer's fold cache (one per compute dtype).
CACHE_NAME = "triton"

#: ``'auto'``'s crossover on CUDA per layer kind: the density below which the Triton path
#: beats the masked path, from ``seg-sparse gpu-check`` (docs/gpu.md). None: not measured yet,
#: and until it is, ``'auto'`` keeps sampling layers masked on CUDA (``'sparse'`` runs this).
CUDA_CROSSOVER: dict[str, float | None] = {"block": None, "head": None}


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The autocast dtype of ``x``'s device while autocast is on there, else ``x``'s dtype."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


def _map(rows: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
    """The channels-last (B, C, H, W) map of (B*H*W, C) rows (a view)."""
    return rows.view(b, h, w, -1).permute(0, 3, 1, 2)


def _fill_taps(interp: Interpolation, device: torch.device) -> FillTaps:
    """The interpolation's taps above the cut, on the device (read once per fold)."""
    kernel = interp.kernel_1d(torch.float64, device)
    return FillTaps.of(*kernel_taps(kernel, interp.eps), interp.eps, device)


def _gathered(positions: Positions, total: int, gather_below: float) -> bool:
    """Whether a layer runs at its mask's positions: below density ``gather_below`` (the torch
    executor's rule); only ``0 < gather_below <= 1`` reads the count (a host sync)."""
    if gather_below > 1:
        return True
    if gather_below <= 0:
        return False
    return int(positions.count) < gather_below * total


def _full_column(mask: torch.Tensor) -> torch.Tensor:
    """Column map of a layer computed at every position: q where the mask sampled, else -1."""
    flat = mask.reshape(-1)
    every = torch.arange(flat.numel(), dtype=torch.int32, device=flat.device)
    return torch.where(flat > 0, every, -1)


@dataclass
class TritonBlockWeights:
    """One block's folded weights for the kernels, in one compute dtype."""

    w1: torch.Tensor  # (C_in, P)
    b1: torch.Tensor  # float32
    conv2: ConvWeights
    offset: ConvWeights | None
    w3: torch.Tensor  # (P, 4P)
    b3: torch.Tensor  # float32, conv3's BN shift
    down_w: torch.Tensor | None  # (C_in, 4P) of a folded 1x1 downsample
    residual_shift: torch.Tensor  # float32: b3, plus the downsample's shift when folded
    taps1: FillTaps
    taps2: FillTaps
    dense_w2: torch.Tensor  # (P, P/g, 3, 3), for the full-map conv2
    dense_offset_w: torch.Tensor | None

    @classmethod
    def of(cls, block: ExecutableBlock, dtype: torch.dtype,
           device: torch.device) -> TritonBlockWeights:
        fw = fold_block(block)
        offset = None
        if fw.offset_w is not None:
            offset = ConvWeights.of(fw.offset_w, fw.offset_b, dtype=dtype)
        shift = fw.b3.float() if fw.down_b is None else (fw.b3 + fw.down_b).float()
        return cls(
            w1=fw.w1.to(dtype).contiguous(), b1=fw.b1.float(),
            conv2=ConvWeights.of(fw.w2, fw.b2, groups=block.groups, dtype=dtype),
            offset=offset, w3=fw.w3.to(dtype).contiguous(), b3=fw.b3.float(),
            down_w=None if fw.down_w is None else fw.down_w.to(dtype).contiguous(),
            residual_shift=shift.contiguous(), taps1=_fill_taps(block.interp1, device),
            taps2=_fill_taps(block.interp2, device), dense_w2=fw.w2.to(dtype),
            dense_offset_w=None if fw.offset_w is None else fw.offset_w.to(dtype),
        )


@dataclass
class TritonHeadWeights:
    """A sampled head's folded convs and classifier for the kernels, in one compute dtype."""

    convs: list[ConvWeights]
    dense: list[tuple[torch.Tensor, torch.Tensor]]  # (weight, bias) for full-map convs
    padding: list[tuple[int, int]]
    dilation: list[tuple[int, int]]
    classifier_w: torch.Tensor  # (C, K)
    classifier_b: torch.Tensor  # float32
    taps: list[FillTaps]

    @classmethod
    def of(cls, sampling: ExecutableHead, layers: HeadLayersLike, dtype: torch.dtype,
           device: torch.device) -> TritonHeadWeights:
        folded = fold_head(layers)
        return cls(
            convs=[ConvWeights.of(c.weight, c.bias, dtype=dtype) for c in folded.convs],
            dense=[(c.weight.to(dtype), c.bias.to(dtype)) for c in folded.convs],
            padding=[c.padding for c in folded.convs],
            dilation=[c.dilation for c in folded.convs],
            classifier_w=folded.classifier_w.to(dtype).contiguous(),
            classifier_b=folded.classifier_b.float().contiguous(),
            taps=[_fill_taps(interp, device) for interp in sampling.interps],
        )


# -- blocks --------------------------------------------------------------------------------
@torch.no_grad()
def run_block(block: ExecutableBlock, x: torch.Tensor, mask1: torch.Tensor | None,
              mask2: torch.Tensor | None, gather_below: float) -> torch.Tensor:
    """Block output, channels-last (B, 4P, H2, W2), from its channels-last input ``x`` and
    masks; a block without masks (the ``dense`` sampler) runs the torch backend's path."""
    if mask1 is None or mask2 is None:
        return torch_block.run_block(block, x, mask1, mask2, gather_below)
    dtype = compute_dtype(x)
    with torch.autocast(x.device.type, enabled=False):
        x = x.to(dtype).contiguous(memory_format=torch.channels_last)
        tw = block.fold_cache.get(block, f"{CACHE_NAME}:{dtype}",
                                  lambda: TritonBlockWeights.of(block, dtype, x.device))
        return _block(block, tw, x, mask1, mask2, gather_below)


def _block(block: ExecutableBlock, tw: TritonBlockWeights, x: torch.Tensor,
           mask1: torch.Tensor, mask2: torch.Tensor, gather_below: float) -> torch.Tensor:
    b, _, h, w = x.shape
    geom = ConvGeometry.of((h, w), (3, 3), block.stride, block.dilation, block.dilation)
    h2, w2 = geom.out_h, geom.out_w
    if tuple(mask2.shape[-2:]) != (h2, w2):
        raise RuntimeError(f"mask2 of shape {tuple(mask2.shape)} does not match conv2's "
                           f"output size {(h2, w2)}")
    rows = channels_last_rows(x)
    # conv1 + BN + ReLU where m1 sampled, interpolated everywhere else
    p1 = compact_positions(mask1)
    if _gathered(p1, p1.capacity, gather_below):
        y1 = gathered_linear(rows, tw.w1, tw.b1, index=p1.index, count=p1.count, relu=True)
        column1 = p1.column
    else:
        y1, column1 = gathered_linear(rows, tw.w1, tw.b1, relu=True), _full_column(mask1)
    h1 = interpolate_fill(y1, column1, mask1, tw.taps1, (h, w))
    # conv2 + BN + ReLU, then conv3, where m2 sampled
    p2 = compact_positions(mask2)
    if _gathered(p2, p2.capacity, gather_below):
        offset = None
        if tw.offset is not None:
            offset = conv2d_at_positions(rows, geom, tw.offset, p2.index, p2.count)
        y2 = conv2d_at_positions(h1, geom, tw.conv2, p2.index, p2.count, offset=offset,
                                 relu=True)
        z = gathered_linear(y2, tw.w3, count=p2.count)
        column2 = p2.column
    else:
        y2 = _conv2_full_map(block, tw, x, _map(h1, b, h, w))
        z, column2 = gathered_linear(y2, tw.w3), _full_column(mask2)
    # conv3's rows interpolated + residual + BN shift, ReLU: every output position once
    base, shift = _residual(block, tw, x)
    out = interpolate_fill(z, column2, mask2, tw.taps2, (h2, w2), base=base, shift=shift,
                           relu=True)
    return _map(out, b, h2, w2)


def _conv2_full_map(block: ExecutableBlock, tw: TritonBlockWeights, x: torch.Tensor,
                    h1: torch.Tensor) -> torch.Tensor:
    """conv2 + BN + ReLU on the whole map (torch's convolutions): (B*H2*W2, P) rows."""
    geometry = dict(stride=block.stride, padding=block.dilation, dilation=block.dilation)
    if tw.offset is not None:
        offset = F.conv2d(x, tw.dense_offset_w, tw.offset.bias.to(x.dtype), **geometry)
        # in float32, as under autocast (torchvision's kernel has no bfloat16)
        out = deform_conv2d(h1.float(), offset.float(), tw.dense_w2.float(), None,
                            **geometry).to(x.dtype)
    else:
        out = F.conv2d(h1, tw.dense_w2, None, groups=block.groups, **geometry)
    out = out + tw.conv2.bias.to(out.dtype).view(1, -1, 1, 1)
    return channels_last_rows(out.relu_().contiguous(memory_format=torch.channels_last))


def _residual(block: ExecutableBlock, tw: TritonBlockWeights,
              x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The residual branch's rows and the shift added with them (b3, and the folded
    downsample's)."""
    if block.downsample is None:
        return channels_last_rows(x), tw.residual_shift
    if tw.down_w is None:  # not a (1x1 conv, BN) pair: run the module, autocast as given
        half = x.dtype != torch.float32
        with torch.autocast(x.device.type, dtype=x.dtype if half else None, enabled=half):
            identity = block.downsample(x)
        identity = identity.to(x.dtype).contiguous(memory_format=torch.channels_last)
        return channels_last_rows(identity), tw.residual_shift
    s = block.downsample[0].stride
    sub = x[:, :, :: s[0], :: s[1]] if s != (1, 1) else x
    return sub.permute(0, 2, 3, 1).reshape(-1, x.shape[1]) @ tw.down_w, tw.residual_shift


# -- heads ---------------------------------------------------------------------------------
@torch.no_grad()
def run_head(sampling: ExecutableHead, layers: HeadLayersLike, x: torch.Tensor,
             owner: nn.Module, gather_below: float) -> torch.Tensor:
    """Logits (B, K, H, W) of the head ``layers`` on its input ``x``: each conv where its mask
    sampled, the classifier where its input was computed and its logits interpolated (as the
    torch backend's :func:`~.head.run_head`); the ``dense`` sampler runs that one."""
    if getattr(sampling, "is_dense", False):
        return torch_head.run_head(sampling, layers, x, owner, gather_below)
    if len(layers.convs) != sampling.num_layers:
        raise ValueError(f"{len(layers.convs)} head convs for {sampling.num_layers} masks")
    dtype = compute_dtype(x)
    with torch.autocast(x.device.type, enabled=False):
        x = x.to(dtype).contiguous(memory_format=torch.channels_last)
        hw = sampling.fold_cache.get(owner, f"{CACHE_NAME}:{dtype}",
                                     lambda: TritonHeadWeights.of(sampling, layers, dtype,
                                                                  x.device))
        return _head(sampling, layers, hw, x, gather_below)


def _head(sampling: ExecutableHead, layers: HeadLayersLike, hw: TritonHeadWeights,
          x: torch.Tensor, gather_below: float) -> torch.Tensor:
    b, _, h, w = x.shape
    feats = x
    last = sampling.num_layers - 1
    for i, conv in enumerate(hw.convs):
        inp = feats
        if layers.concat_input and i == last:
            inp = torch.cat([x, feats], 1).contiguous(memory_format=torch.channels_last)
        mask = sampling.sample(i, inp)
        positions = compact_positions(mask)
        if _gathered(positions, positions.capacity, gather_below):
            geom = ConvGeometry.of((h, w), conv.kernel, 1, hw.padding[i], hw.dilation[i])
            y = conv2d_at_positions(channels_last_rows(inp), geom, conv, positions.index,
                                    positions.count, relu=True)
            column, count = positions.column, positions.count
        else:
            weight, bias = hw.dense[i]
            full = F.conv2d(inp, weight, bias, padding=hw.padding[i],
                            dilation=hw.dilation[i]).relu_()
            y = channels_last_rows(full.contiguous(memory_format=torch.channels_last))
            column, count = _full_column(mask), None
        if i < last:
            feats = _map(interpolate_fill(y, column, mask, hw.taps[i], (h, w)), b, h, w)
            continue
        z = gathered_linear(y, hw.classifier_w, count=count)
        logits = interpolate_fill(z, column, mask, hw.taps[i], (h, w), shift=hw.classifier_b)
    return _map(logits, b, h, w)


def _crossover() -> dict[str, dict[str, float]]:
    measured = {kind: d for kind, d in CUDA_CROSSOVER.items() if d is not None}
    return {"cuda": measured} if measured else {}


#: The Triton backend: CUDA, ahead of the torch backend there.
TRITON_BACKEND = ExecutionBackend(
    name="triton", run_block=run_block, run_head=run_head, device_types=frozenset({"cuda"}),
    crossover=_crossover(), priority=10,
)
