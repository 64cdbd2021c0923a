"""Convolutions evaluated only at chosen output positions: gather the taps, then one GEMM.

Feature maps are channels-last, (B, H, W, C) contiguous, so the C values of a position are one
contiguous row and a gather reads whole rows. Output positions are flat indices over
(B, Hout, Wout), which keeps batch > 1 a plain index computation.

* :func:`conv_at` -- a k x k convolution (stride, dilation, zero padding, groups) at the
  positions: integer neighbour rows, then (N, k*k*C) x (k*k*C, Cout).
* :func:`deform_conv_at` -- DCN v1 at the positions: for each kernel point the bilinear sample
  at the offset location (the four corner rows, weights shared by all channels, zero outside
  the image as in ``torchvision.ops.deform_conv2d``), then the same GEMM.

Both work in tiles of positions so that the gathered tap matrix stays a few MB.
"""

from __future__ import annotations

import torch

#: Upper bound on gathered tap values per tile (floats): 4 Mi = 16 MB in float32.
TILE_VALUES = 1 << 22


def output_coords(positions: torch.Tensor, out_hw: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """(batch, row, col) of flat output positions over (B, Hout, Wout)."""
    h, w = out_hw
    plane = positions % (h * w)
    return positions // (h * w), plane // w, plane % w


def flatten_weight(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """(Cout, Cin/g, kh, kw) -> (g, kh*kw*Cin/g, Cout/g), rows ordered (ky, kx, c) like taps."""
    cout, cin_g, kh, kw = weight.shape
    w = weight.view(groups, cout // groups, cin_g, kh, kw)
    return w.permute(0, 3, 4, 2, 1).reshape(groups, kh * kw * cin_g, cout // groups).contiguous()


def _tile_size(values_per_position: int) -> int:
    """Positions per tile so that a tile gathers about TILE_VALUES values."""
    return max(1, TILE_VALUES // max(1, values_per_position))


def _taps_gemm(
    taps: torch.Tensor, flat_weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """(n, K, C) taps x (g, K*C/g, Cout/g) weight -> (n, Cout) (+ bias)."""
    n, k, c = taps.shape
    groups = flat_weight.shape[0]
    if groups == 1:
        rows = taps.reshape(n, k * c)
        w = flat_weight[0]
        return torch.addmm(bias, rows, w) if bias is not None else rows @ w
    grouped = taps.view(n, k, groups, c // groups).permute(2, 0, 1, 3).reshape(groups, n, -1)
    out = torch.bmm(grouped, flat_weight).permute(1, 0, 2).reshape(n, -1)
    return out + bias if bias is not None else out


def _tap_grid(k: int, dilation: int, padding: int, device: torch.device,
              dtype: torch.dtype = torch.long) -> tuple[torch.Tensor, torch.Tensor]:
    """Row / column offsets (1, k*k) of a k x k kernel's taps relative to ``pos * stride``."""
    ky, kx = torch.meshgrid(torch.arange(k, device=device), torch.arange(k, device=device),
                            indexing="ij")
    return ((ky.reshape(1, -1) * dilation - padding).to(dtype),
            (kx.reshape(1, -1) * dilation - padding).to(dtype))


def conv_at(
    x: torch.Tensor,
    positions: torch.Tensor,
    out_hw: tuple[int, int],
    flat_weight: torch.Tensor,
    bias: torch.Tensor | None,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
) -> torch.Tensor:
    """k x k convolution of ``x`` (B, H, W, C) at ``positions``; returns (N, Cout).

    ``flat_weight`` comes from :func:`flatten_weight`. Equals ``F.conv2d`` (NCHW) at those
    output positions. Taps outside the image read a clamped row that is then zeroed, so the
    input is never padded (a copy of the whole map).
    """
    b, h, w, c = x.shape
    rows = x.reshape(-1, c)
    k = kernel_size
    ky, kx = _tap_grid(k, dilation, padding, x.device)
    bi, oi, oj = output_coords(positions, out_hw)
    outputs = []
    step = _tile_size(k * k * c)
    for start in range(0, positions.numel(), step):
        sl = slice(start, start + step)
        iy = oi[sl, None] * stride + ky
        ix = oj[sl, None] * stride + kx
        index = bi[sl, None] * (h * w) + iy.clamp(0, h - 1) * w + ix.clamp(0, w - 1)
        taps = rows.index_select(0, index.reshape(-1))
        outside = ((iy < 0) | (iy >= h) | (ix < 0) | (ix >= w)).reshape(-1).nonzero()
        if outside.numel():
            taps.index_fill_(0, outside.squeeze(1), 0)
        outputs.append(_taps_gemm(taps.view(-1, k * k, c), flat_weight, bias))
    if not outputs:
        return x.new_zeros(0, flat_weight.shape[0] * flat_weight.shape[2])
    return torch.cat(outputs) if len(outputs) > 1 else outputs[0]


def bilinear_corners(
    py: torch.Tensor, px: torch.Tensor, h: int, w: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corner offsets (..., 4) into an (h, w) plane and bilinear weights (..., 4) at (py, px).

    Corners outside the plane get weight 0 (and a clamped, valid index), which is
    ``torchvision.ops.deform_conv2d``'s zero padding.
    """
    y0 = torch.floor(py)
    x0 = torch.floor(px)
    ly, lx = py - y0, px - x0
    y0, x0 = y0.long(), x0.long()
    idx, wts = [], []
    for dy, dx, wy, wx in ((0, 0, 1 - ly, 1 - lx), (0, 1, 1 - ly, lx),
                           (1, 0, ly, 1 - lx), (1, 1, ly, lx)):
        yy, xx = y0 + dy, x0 + dx
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        idx.append(yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1))
        wts.append(wy * wx * inside)
    return torch.stack(idx, -1), torch.stack(wts, -1)


def deform_conv_at(
    x: torch.Tensor,
    positions: torch.Tensor,
    out_hw: tuple[int, int],
    offset: torch.Tensor,
    flat_weight: torch.Tensor,
    bias: torch.Tensor | None,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
) -> torch.Tensor:
    """DCN v1 (one offset group) of ``x`` (B, H, W, C) at ``positions``; returns (N, Cout).

    ``offset``: (N, 2*k*k) at those positions, laid out [dy0, dx0, dy1, dx1, ...] per kernel
    point (row-major), as ``torchvision.ops.deform_conv2d`` / mmcv read it.
    """
    b, h, w, c = x.shape
    k = kernel_size
    rows = x.reshape(-1, c)
    ky, kx = _tap_grid(k, dilation, padding, x.device, offset.dtype)
    bi, oi, oj = output_coords(positions, out_hw)
    off = offset.view(-1, k * k, 2)
    outputs = []
    step = _tile_size(4 * k * k * c)
    for start in range(0, positions.numel(), step):
        sl = slice(start, start + step)
        py = (oi[sl, None] * stride).to(offset.dtype) + ky + off[sl, :, 0]
        px = (oj[sl, None] * stride).to(offset.dtype) + kx + off[sl, :, 1]
        corner_idx, corner_w = bilinear_corners(py, px, h, w)
        index = (corner_idx + (bi[sl] * (h * w))[:, None, None]).reshape(-1)
        corners = rows.index_select(0, index).view(-1, k * k, 4, c)
        taps = torch.einsum("nkqc,nkq->nkc", corners, corner_w.to(x.dtype))
        outputs.append(_taps_gemm(taps, flat_weight, bias))
    if not outputs:
        return x.new_zeros(0, flat_weight.shape[0] * flat_weight.shape[2])
    return torch.cat(outputs) if len(outputs) > 1 else outputs[0]
