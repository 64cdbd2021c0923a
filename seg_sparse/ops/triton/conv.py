"""Plain and deformable k x k convolutions at sampled output positions: implicit GEMM.

For each of the ``count`` positions of a fixed-capacity index (:mod:`.positions`), the kernel
loads the input rows its kernel points read straight into the GEMM's operand tiles (channels-
last table, one row per input position) and accumulates one ``tl.dot`` per kernel point and
channel block: no tap matrix in memory. Plain: the integer neighbour (stride, padding,
dilation), zero outside the image. Deformable (DCN v1, one offset group): the four bilinear
corners of the point moved by that position's offset row, weighted as torchvision's kernel
does (corners outside the image weigh 0). Conv groups: each program computes a block of one
group's output channels from that group's input channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ..cpu.taps import ConvGeometry
from .launch import (
    MAX_BLOCK_OUT,
    MAX_BLOCK_REDUCE,
    MAX_BLOCK_ROWS,
    block,
    check_rows,
    dot_precision,
    upcast_dot,
)


@triton.jit
def _corner(y, x, H, W):
    """Whether integer point (y, x) lies in the image, and its clamped row offset in it."""
    inside = (y >= 0) & (y < H) & (x >= 0) & (x < W)
    row = tl.minimum(tl.maximum(y, 0), H - 1) * W + tl.minimum(tl.maximum(x, 0), W - 1)
    return inside, row


@triton.jit
def _conv_at_kernel(
    x_ptr, x_stride, index_ptr, count_ptr, w_ptr, bias_ptr, offset_ptr, offset_stride,
    out_ptr, out_stride,
    H, W, HO, WO, C_GROUP, N_GROUP, N_TOTAL,
    STRIDE_H, STRIDE_W, PAD_H, PAD_W, DIL_H, DIL_W,
    KH: tl.constexpr, KW: tl.constexpr, DEFORM: tl.constexpr, HAS_BIAS: tl.constexpr,
    RELU: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
):
    count = tl.load(count_ptr)
    start = tl.program_id(0) * BM
    if start >= count:  # past the sampled positions
        return
    rm = (start + tl.arange(0, BM)).to(tl.int64)  # int64 index math throughout
    valid = rm < count
    blocks_per_group = (N_GROUP + BN - 1) // BN
    group = tl.program_id(1) // blocks_per_group
    rn_local = (tl.program_id(1) % blocks_per_group) * BN + tl.arange(0, BN)
    n_ok = rn_local < N_GROUP
    rn = group * N_GROUP + rn_local
    pos = tl.load(index_ptr + rm, mask=valid, other=0).to(tl.int64)
    image = pos // (HO * WO)
    rest = pos - image * (HO * WO)
    oy = rest // WO
    ox = rest - oy * WO
    first_row = image * H * W
    acc = tl.full((BM, BN), 0.0, tl.float32)
    for kp in tl.static_range(KH * KW):
        iy = oy * STRIDE_H - PAD_H + (kp // KW) * DIL_H
        ix = ox * STRIDE_W - PAD_W + (kp % KW) * DIL_W
        if DEFORM:
            dy = tl.load(offset_ptr + rm * offset_stride + 2 * kp, mask=valid, other=0.0)
            dx = tl.load(offset_ptr + rm * offset_stride + 2 * kp + 1, mask=valid, other=0.0)
            py = iy.to(tl.float32) + dy.to(tl.float32)
            px = ix.to(tl.float32) + dx.to(tl.float32)
            y0f = tl.floor(py)
            x0f = tl.floor(px)
            fy = py - y0f
            fx = px - x0f
            y0 = y0f.to(tl.int64)
            x0 = x0f.to(tl.int64)
            in00, r00 = _corner(y0, x0, H, W)
            in01, r01 = _corner(y0, x0 + 1, H, W)
            in10, r10 = _corner(y0 + 1, x0, H, W)
            in11, r11 = _corner(y0 + 1, x0 + 1, H, W)
            w00 = tl.where(in00 & valid, (1 - fy) * (1 - fx), 0.0)
            w01 = tl.where(in01 & valid, (1 - fy) * fx, 0.0)
            w10 = tl.where(in10 & valid, fy * (1 - fx), 0.0)
            w11 = tl.where(in11 & valid, fy * fx, 0.0)
        else:
            inside, r = _corner(iy, ix, H, W)
            inside = inside & valid
        for c0 in range(0, C_GROUP, BK):
            rk = c0 + tl.arange(0, BK)
            k_ok = rk < C_GROUP
            ch = (group * C_GROUP + rk)[None, :]
            if DEFORM:
                base = x_ptr + first_row[:, None] * x_stride + ch
                ok = valid[:, None] & k_ok[None, :]
                a = w00[:, None] * tl.load(base + r00[:, None] * x_stride, mask=ok,
                                           other=0.0).to(tl.float32)
                a += w01[:, None] * tl.load(base + r01[:, None] * x_stride, mask=ok,
                                            other=0.0).to(tl.float32)
                a += w10[:, None] * tl.load(base + r10[:, None] * x_stride, mask=ok,
                                            other=0.0).to(tl.float32)
                a += w11[:, None] * tl.load(base + r11[:, None] * x_stride, mask=ok,
                                            other=0.0).to(tl.float32)
                if not UPCAST:
                    a = a.to(x_ptr.dtype.element_ty)
            else:
                a = tl.load(x_ptr + (first_row + r)[:, None] * x_stride + ch,
                            mask=inside[:, None] & k_ok[None, :], other=0.0)
            b = tl.load(w_ptr + (kp * C_GROUP + rk)[:, None] * N_TOTAL + rn[None, :],
                        mask=k_ok[:, None] & n_ok[None, :], other=0.0)
            if UPCAST:
                a = a.to(tl.float32)
                b = b.to(tl.float32)
            acc = tl.dot(a, b, acc, input_precision=PRECISION)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    if RELU:
        acc = tl.maximum(acc, 0.0)
    tl.store(out_ptr + rm[:, None] * out_stride + rn[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=valid[:, None] & n_ok[None, :])


@dataclass
class ConvWeights:
    """A conv's weight laid out for the kernel: ``rows`` (kh * kw * C_in / groups, C_out),
    row ``k * C_in/groups + c`` the weights of kernel point k (row-major) and group-local input
    channel c; ``bias`` (C_out,) float32 or None."""

    rows: torch.Tensor
    bias: torch.Tensor | None
    kernel: tuple[int, int]
    groups: int

    @classmethod
    def of(cls, weight: torch.Tensor, bias: torch.Tensor | None, groups: int = 1,
           dtype: torch.dtype | None = None) -> ConvWeights:
        """From a torch conv weight (C_out, C_in / groups, kh, kw)."""
        if weight.dim() != 4 or weight.shape[0] % groups:
            raise ValueError(f"weight must be (C_out, C_in/groups, kh, kw) with C_out a multiple "
                             f"of groups={groups}, got {tuple(weight.shape)}")
        rows = weight.permute(2, 3, 1, 0).reshape(-1, weight.shape[0])
        return cls(rows.to(dtype or weight.dtype).contiguous(),
                   None if bias is None else bias.float().contiguous(),
                   (int(weight.shape[2]), int(weight.shape[3])), groups)

    @property
    def in_per_group(self) -> int:
        return self.rows.shape[0] // (self.kernel[0] * self.kernel[1])

    @property
    def out_channels(self) -> int:
        return self.rows.shape[1]


def conv2d_at_positions(
    table: torch.Tensor,
    geom: ConvGeometry,
    weights: ConvWeights,
    index: torch.Tensor,
    count: torch.Tensor,
    *,
    offset: torch.Tensor | None = None,
    relu: bool = False,
) -> torch.Tensor:
    """The convolution (plus bias, optional ReLU) at the first ``count`` of the flat output
    positions ``index`` (over (B, H_out, W_out) of ``geom``): compact rows (capacity, C_out).

    ``table``: (B * H * W, C_in) channels-last input rows, the weights' dtype. ``offset``
    (capacity, 2 * kh * kw) float rows, row r the offsets of position ``index[r]`` in
    torchvision's channel order (dy, dx per kernel point): a deformable convolution.
    """
    check_rows("table", table, weights.rows.dtype)
    c_in = weights.in_per_group * weights.groups
    if table.shape[1] != c_in:
        raise ValueError(f"table has {table.shape[1]} channels, the weight reads {c_in}")
    if table.shape[0] % (geom.in_h * geom.in_w):
        raise ValueError(f"{table.shape[0]} table rows are not whole {geom.in_h}x{geom.in_w} "
                         f"images")
    if geom.kernel != weights.kernel:
        raise ValueError(f"geometry kernel {geom.kernel} != weight kernel {weights.kernel}")
    kh, kw = weights.kernel
    if offset is not None:
        check_rows("offset", offset)
        if offset.shape != (index.shape[0], 2 * kh * kw):
            raise ValueError(f"offset must be ({index.shape[0]}, {2 * kh * kw}) rows (one offset "
                             f"group), got {tuple(offset.shape)}")
    capacity, n_out = index.shape[0], weights.out_channels
    out = table.new_empty(capacity, n_out)
    if capacity == 0:
        return out
    n_group = n_out // weights.groups
    bm = block(capacity, MAX_BLOCK_ROWS)
    bn = block(n_group, MAX_BLOCK_OUT)
    bk = block(weights.in_per_group, MAX_BLOCK_REDUCE)
    grid = (triton.cdiv(capacity, bm), weights.groups * triton.cdiv(n_group, bn))
    _conv_at_kernel[grid](
        table, table.stride(0), index, count, weights.rows,
        weights.bias if weights.bias is not None else weights.rows,
        offset if offset is not None else table, offset.stride(0) if offset is not None else 0,
        out, out.stride(0),
        geom.in_h, geom.in_w, geom.out_h, geom.out_w, weights.in_per_group, n_group, n_out,
        *geom.stride, *geom.padding, *geom.dilation,
        KH=kh, KW=kw, DEFORM=offset is not None, HAS_BIAS=weights.bias is not None,
        RELU=relu, UPCAST=upcast_dot(table.dtype), PRECISION=dot_precision(table.dtype),
        BM=bm, BN=bn, BK=bk,
    )
    return out
