"""The interpolation fill: every position of a map from a layer computed at sampled positions.

For the rows ``y`` a layer computed at the sampled positions (compact, addressed through the
positions' column map) and the mask ``m``, every position q of the output map gets

    out[q] = act(base[q] + shift + m[q] y[q] + (1 - m[q]) fill(q)),
    fill(q) = sum_d G(d) m[q+d] y[q+d] / max(sum_d G(d) m[q+d], eps),

d over the Gaussian taps that :func:`seg_sparse.sampling.sparse_interpolation.kernel_taps`
keeps (weight above its cut), neighbours outside the image or not sampled weighing 0: the
masked path's ``interp(F, M)`` (:class:`~seg_sparse.sampling.GaussianInterpolation`) at the
rows it needs. ``base`` / ``shift`` / ``act`` fuse conv3's epilogue into the same pass: the
residual rows, the BN shift, ReLU. Positions with m = 1 copy their row and skip the taps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .launch import FILL_BLOCK_ROWS, FILL_MAX_BLOCK_CHANNELS, block, check_rows


@triton.jit
def _interp_fill_kernel(
    y_ptr, y_stride, column_ptr, mask_ptr, tap_dy_ptr, tap_dx_ptr, tap_w_ptr, num_taps,
    base_ptr, base_stride, shift_ptr, out_ptr, out_stride,
    total, H, W, C, eps,
    HAS_BASE: tl.constexpr, HAS_SHIFT: tl.constexpr, RELU: tl.constexpr,
    BQ: tl.constexpr, BC: tl.constexpr,
):
    # index math in int64: no overflow on large maps (and no overflow checks in the interpreter)
    rq = (tl.program_id(0) * BQ + tl.arange(0, BQ)).to(tl.int64)
    q_ok = rq < total
    rc = tl.program_id(1) * BC + tl.arange(0, BC)
    c_ok = rc < C
    m = tl.load(mask_ptr + rq, mask=q_ok, other=1.0).to(tl.float32)
    col = tl.load(column_ptr + rq, mask=q_ok, other=-1).to(tl.int64)
    own = tl.load(y_ptr + col[:, None] * y_stride + rc[None, :],
                  mask=(q_ok & (col >= 0))[:, None] & c_ok[None, :], other=0.0)
    value = own.to(tl.float32) * m[:, None]
    need = q_ok & (m < 1.0)
    plane = H * W
    image = rq // plane
    rest = rq - image * plane
    qy = rest // W
    qx = rest - qy * W
    acc = tl.full((BQ, BC), 0.0, tl.float32)
    den = tl.full((BQ,), 0.0, tl.float32)
    for t in range(num_taps):
        ny = qy + tl.load(tap_dy_ptr + t)
        nx = qx + tl.load(tap_dx_ptr + t)
        inside = need & (ny >= 0) & (ny < H) & (nx >= 0) & (nx < W)
        nq = image * plane + ny * W + nx
        ncol = tl.load(column_ptr + nq, mask=inside, other=-1).to(tl.int64)
        sampled = ncol >= 0
        weight = tl.load(tap_w_ptr + t) * tl.load(mask_ptr + nq, mask=sampled,
                                                  other=0.0).to(tl.float32)
        rows = tl.load(y_ptr + ncol[:, None] * y_stride + rc[None, :],
                       mask=sampled[:, None] & c_ok[None, :], other=0.0)
        acc += weight[:, None] * rows.to(tl.float32)
        den += weight
    value += (1.0 - m)[:, None] * (acc / tl.maximum(den, eps)[:, None])
    ok = q_ok[:, None] & c_ok[None, :]
    if HAS_BASE:
        value += tl.load(base_ptr + rq[:, None] * base_stride + rc[None, :], mask=ok,
                         other=0.0).to(tl.float32)
    if HAS_SHIFT:
        value += tl.load(shift_ptr + rc, mask=c_ok, other=0.0).to(tl.float32)[None, :]
    if RELU:
        value = tl.maximum(value, 0.0)
    tl.store(out_ptr + rq[:, None] * out_stride + rc[None, :],
             value.to(out_ptr.dtype.element_ty), mask=ok)


@dataclass
class FillTaps:
    """The Gaussian taps of one interpolation on the device: offsets ``dy`` / ``dx`` (T,)
    int32 and weights (T,) float32, and its ``eps``."""

    dy: torch.Tensor
    dx: torch.Tensor
    weight: torch.Tensor
    eps: float

    @classmethod
    def of(cls, offsets: list[tuple[int, int]], weights: torch.Tensor, eps: float,
           device: torch.device | str) -> FillTaps:
        """From :func:`~seg_sparse.sampling.sparse_interpolation.kernel_taps`' result."""
        dy, dx = zip(*offsets)
        return cls(torch.tensor(dy, dtype=torch.int32, device=device),
                   torch.tensor(dx, dtype=torch.int32, device=device),
                   weights.to(device=device, dtype=torch.float32), float(eps))


def interpolate_fill(
    rows: torch.Tensor,
    column: torch.Tensor,
    mask: torch.Tensor,
    taps: FillTaps,
    size: tuple[int, int],
    *,
    base: torch.Tensor | None = None,
    shift: torch.Tensor | None = None,
    relu: bool = False,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The (B * H * W, C) map of a layer computed at the sampled positions (module docstring).

    ``rows`` (capacity, C): the layer's rows at the sampled positions, row ``column[q]`` for
    position q (``column`` (B*H*W,) int32, -1 where not sampled); ``mask`` (B, 1, H, W) or
    flat, the mask the positions came from (binary, or the soft gate); ``size`` (H, W).
    ``base`` (B*H*W, C) rows and ``shift`` (C,) are added, then ReLU with ``relu``.
    """
    check_rows("rows", rows)
    flat_mask = mask.reshape(-1)
    total = flat_mask.numel()
    h, w = size
    if total % (h * w) or column.shape != (total,):
        raise ValueError(f"mask of {total} positions and column of shape {tuple(column.shape)}"
                         f" must cover whole {h}x{w} images alike")
    channels = rows.shape[1]
    if base is not None:
        check_rows("base", base)
        if base.shape != (total, channels):
            raise ValueError(f"base must be ({total}, {channels}) rows, got {tuple(base.shape)}")
    if shift is not None and shift.shape != (channels,):
        raise ValueError(f"shift must have shape ({channels},), got {tuple(shift.shape)}")
    out = rows.new_empty(total, channels, dtype=out_dtype or rows.dtype)
    if total == 0 or channels == 0:
        return out
    bc = block(channels, FILL_MAX_BLOCK_CHANNELS)
    grid = (triton.cdiv(total, FILL_BLOCK_ROWS), triton.cdiv(channels, bc))
    _interp_fill_kernel[grid](
        rows, rows.stride(0), column, flat_mask.contiguous(), taps.dy, taps.dx, taps.weight,
        taps.weight.shape[0], base if base is not None else rows,
        base.stride(0) if base is not None else 0, shift if shift is not None else rows,
        out, out.stride(0), total, h, w, channels, taps.eps,
        HAS_BASE=base is not None, HAS_SHIFT=shift is not None, RELU=relu,
        BQ=FILL_BLOCK_ROWS, BC=bc,
    )
    return out
