"""Convolution taps as (row index, weight) pairs into a channels-last table, and their gather.

A k x k convolution at output position p reads, for every kernel point, one value per input
channel. Both the plain and the deformable convolution are written here as a list of *taps*:
for every position and kernel point, ``n`` row indices into the input table (``B*H*W`` rows of
``C`` channels, channels-last) and ``n`` weights that are shared by all channels of the row.
A plain conv has one tap per kernel point (weight 1 inside the image, 0 in the zero padding); a
deformable conv has four, the bilinear corners of its sampling point, so the same gather
(:func:`gather_tap_image`, one ``embedding_bag``) and the same GEMM serve both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

IntPair = int | tuple[int, int]


def _pair(value: IntPair, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair  # type: ignore[return-value]


@dataclass(frozen=True)
class ConvGeometry:
    """Spatial geometry of a 2-D convolution: input / output size, kernel, stride, padding,
    dilation (torch's output-size rule)."""

    in_h: int
    in_w: int
    out_h: int
    out_w: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    @classmethod
    def of(
        cls,
        in_hw: tuple[int, int],
        kernel: tuple[int, int],
        stride: IntPair = 1,
        padding: IntPair = 0,
        dilation: IntPair = 1,
    ) -> ConvGeometry:
        stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
        dilation = _pair(dilation, "dilation")
        if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
            raise ValueError(f"need stride >= 1, dilation >= 1, padding >= 0; got stride="
                             f"{stride}, padding={padding}, dilation={dilation}")
        out = [
            (in_hw[d] + 2 * padding[d] - dilation[d] * (kernel[d] - 1) - 1) // stride[d] + 1
            for d in (0, 1)
        ]
        if min(out) < 1:
            raise ValueError(
                f"input of size {tuple(in_hw)} is too small for kernel {kernel} with "
                f"padding={padding}, dilation={dilation} (output size {tuple(out)})"
            )
        return cls(in_hw[0], in_hw[1], out[0], out[1], kernel, stride, padding, dilation)

    @property
    def kernel_points(self) -> int:
        return self.kernel[0] * self.kernel[1]

    def kernel_coordinates(self, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """For flat output positions over (B, Ho, Wo): the first table row of each position's
        image (``b * H * W``, shape (T, 1)) and the integer input coordinates (y, x) of every
        kernel point before any offset (shape (T, K), kernel points in row-major order)."""
        per_image = self.out_h * self.out_w
        image = torch.div(positions, per_image, rounding_mode="floor")
        rest = positions - image * per_image
        oy = torch.div(rest, self.out_w, rounding_mode="floor")
        ox = rest - oy * self.out_w
        dev = positions.device
        ky = torch.arange(self.kernel[0], device=dev) * self.dilation[0]
        kx = torch.arange(self.kernel[1], device=dev) * self.dilation[1]
        ky = ky.repeat_interleave(self.kernel[1])
        kx = kx.repeat(self.kernel[0])
        y = (oy * self.stride[0] - self.padding[0]).unsqueeze(1) + ky
        x = (ox * self.stride[1] - self.padding[1]).unsqueeze(1) + kx
        return (image * (self.in_h * self.in_w)).unsqueeze(1), y, x


@dataclass
class Taps:
    """``index`` (T, K, D, n) int64 rows of the input table and ``weight`` (T, K, D, n): the
    value of kernel point k of position t in deformable group d is
    ``sum_i weight[t, k, d, i] * table[index[t, k, d, i], channels of d]``."""

    index: Tensor
    weight: Tensor

    def shifted(self, rows: int) -> Taps:
        """The same taps into a table that starts ``rows`` rows later (a slice of the table)."""
        return Taps(self.index - rows, self.weight) if rows else self

    def row_range(self) -> tuple[int, int]:
        """First and one-past-last table row the taps read."""
        return int(self.index.min()), int(self.index.max()) + 1


def _neighbours(geom: ConvGeometry, low: Tensor, count: int) -> list[tuple[Tensor, Tensor]]:
    """Per axis (y, x): the ``count`` (1 or 2) integer neighbours ``low``, ``low + 1`` of the
    sampling points ``low`` (..., 2), clamped into the image, shape (..., count), and whether
    each lies inside it. Clamping keeps the rows of taps in the zero padding near the rows the
    other taps read (a tile's table slice stays small); their weight is 0. (Per axis with
    scalar bounds: several times faster than one op with broadcast bounds.)"""
    axes = []
    for axis, size in enumerate((geom.in_h, geom.in_w)):
        neighbours = low[..., axis].unsqueeze(-1)
        if count == 2:
            neighbours = neighbours + torch.arange(2, device=low.device)
        axes.append((neighbours.clamp(0, size - 1), (neighbours >= 0) & (neighbours < size)))
    return axes


def _outer_taps(first_row: Tensor, geom: ConvGeometry, ny: Tensor, nx: Tensor, wy: Tensor,
                wx: Tensor) -> Taps:
    """Taps as outer products of the y and x neighbours (..., n) and weights: (..., n * n),
    corners (y0, x0), (y0, x1), (y1, x0), (y1, x1) for n = 2."""
    first_row = first_row.view(first_row.shape[0], *(1,) * (ny.dim() - 1))
    index = (first_row + ny * geom.in_w).unsqueeze(-1) + nx.unsqueeze(-2)
    return Taps(index.flatten(-2), (wy.unsqueeze(-1) * wx.unsqueeze(-2)).flatten(-2))


def integer_taps(geom: ConvGeometry, positions: Tensor, dtype: torch.dtype) -> Taps:
    """Taps of a plain convolution: one per kernel point, weight 1 inside the image, 0 in the
    zero padding; shape (T, K, 1, 1)."""
    first_row, y, x = geom.kernel_coordinates(positions)
    (ny, in_y), (nx, in_x) = _neighbours(geom, torch.stack((y, x), dim=-1).unsqueeze(2), 1)
    return _outer_taps(first_row, geom, ny, nx, in_y.to(dtype), in_x.to(dtype))


class _Bilinear:
    """Sampling points of a deformable convolution and their bilinear axis weights.

    ``offset`` (T, D, K, 2) holds (dy, dx) per deformable group and kernel point (torchvision's
    channel order reshaped). Kernel point (i, j) of output (oy, ox) samples
    ``y = oy * stride - pad + i * dilation + dy`` (same for x); the zero-padded image is read
    bilinearly, as torchvision's kernel does: neighbours outside the image weigh 0, so points at
    or beyond one pixel outside read 0. Per axis: neighbours (T, K, D, 2), whether they are
    inside the image, and their weights (1 - frac, frac) (0 outside).
    """

    def __init__(self, geom: ConvGeometry, positions: Tensor, offset: Tensor) -> None:
        self.first_row, y, x = geom.kernel_coordinates(positions)
        base = torch.stack((y, x), dim=-1).unsqueeze(2).to(offset.dtype)  # (T, K, 1, 2)
        point = base + offset.transpose(1, 2)  # (T, K, D, 2)
        # floor as a division: torch.floor's CPU kernel goes multi-threaded from 2048 elements
        # on, a thread-pool round trip per call (milliseconds on a loaded machine)
        low = torch.div(point, 1, rounding_mode="floor")
        frac = point - low
        self.axes = _neighbours(geom, low.long(), 2)
        self.weights = [torch.stack((1 - frac[..., axis], frac[..., axis]), dim=-1) * inside
                        for axis, (_, inside) in enumerate(self.axes)]


def bilinear_taps(
    geom: ConvGeometry, positions: Tensor, offset: Tensor, mask: Tensor | None = None
) -> Taps:
    """Taps of a deformable convolution: the four bilinear corners of every sampling point,
    (T, K, D, 4); ``mask`` (T, D, K) is the DCNv2 modulation (see :class:`_Bilinear`)."""
    points = _Bilinear(geom, positions, offset)
    (ny, _), (nx, _) = points.axes
    wy, wx = points.weights
    if mask is not None:  # modulate the y factor: 2 products per point instead of 4
        wy = wy * mask.transpose(1, 2).unsqueeze(-1)
    return _outer_taps(points.first_row, geom, ny, nx, wy, wx)


def bilinear_taps_backward(
    geom: ConvGeometry, positions: Tensor, offset: Tensor, mask: Tensor | None,
    grad_weight: Tensor,
) -> tuple[Tensor, Tensor | None]:
    """Gradients of :func:`bilinear_taps`' weights, (T, K, D, 4), for the offset (T, D, K, 2)
    and the mask (T, D, K). The corner weight is m * wy_a * wx_b with wy = (1 - fy, fy) inside
    the image; d/dfy gives m * sum_a s_a * in_a * sum_b g_ab wx_b with s = (-1, 1), likewise
    for x, and d/dm = sum_ab g_ab wy_a wx_b. At integer points (fy = 0) this is the one-sided
    derivative that torchvision's kernel computes."""
    points = _Bilinear(geom, positions, offset)
    t, k, d, _ = grad_weight.shape
    grad = grad_weight.view(t, k, d, 2, 2)  # (y neighbour a, x neighbour b)
    wy, wx = points.weights  # (T, K, D, 2)
    sign = torch.tensor([-1, 1], dtype=grad.dtype, device=grad.device)
    sy, sx = (inside * sign for _, inside in points.axes)
    g_y = (grad * wx.unsqueeze(-2)).sum(-1)  # sum_b g_ab wx_b
    g_x = (grad * wy.unsqueeze(-1)).sum(-2)  # sum_a g_ab wy_a
    m = None if mask is None else mask.transpose(1, 2)  # (T, K, D)
    grad_x = (g_x * sx).sum(-1)
    if m is not None:  # the mask multiplies wy
        grad_x = grad_x * m
        g_y = g_y * m.unsqueeze(-1)
    grad_y = (g_y * sy).sum(-1)
    grad_offset = torch.stack((grad_y, grad_x), dim=-1).transpose(1, 2)
    grad_mask = None
    if mask is not None:
        grad_mask = (g_x * wx).sum(-1).transpose(1, 2)
    return grad_offset, grad_mask


def gather_tap_image(table: Tensor, taps: Taps) -> Tensor:
    """The taps of T positions, given in tap-image order (kh, T, kw, D, n), as a channels-last
    *tap image* (1, C, kh, kw * T).

    Pixel (i, t * kw + j) holds the value that kernel point (i, j) of position t reads, so a
    kh x kw convolution with stride (kh, kw) over the image is the convolution at the T
    positions: one GEMM, run by the direct-convolution kernels (on CPU, oneDNN's run at about
    twice the speed of its or MKL's GEMM on the AMD machine of docs/benchmarks.md). Conv groups
    need nothing special. One ``embedding_bag`` (the weighted sum of each tap list's rows)
    fills the image; with D deformable groups the table is viewed as D rows of C / D channels
    per input position, one tap list per group.
    """
    kh, t, kw, _, _ = taps.index.shape
    channels = table.shape[1]
    bag_table, index, weight = _bag_arguments(table, taps)
    rows = F.embedding_bag(index, bag_table, per_sample_weights=weight, mode="sum")
    return rows.view(1, kh, kw * t, channels).permute(0, 3, 1, 2)




class TapGather(NamedTuple):
    """What the backward of one :func:`gather_tap_image` needs: ``embedding_bag``'s inputs
    and bookkeeping (see :func:`gather_tap_image_for_backward`)."""

    table: Tensor  # (rows, C / D)
    index: Tensor  # (bags * n,)
    offsets: Tensor
    weight: Tensor  # (bags * n,)
    offset2bag: Tensor
    bag_size: Tensor
    max_indices: Tensor
    taps_shape: torch.Size
    channels: int


def _bag_arguments(table: Tensor, taps: Taps) -> tuple[Tensor, Tensor, Tensor]:
    """The (viewed) table, (bags, n) row indices and weights of the taps' embedding bag."""
    kh, t, kw, d, n = taps.index.shape
    index = taps.index
    if d > 1:  # row q, group g of the table is row q * d + g of the sliced view
        index = index * d + torch.arange(d, device=index.device).view(d, 1)
        table = table.view(-1, table.shape[1] // d)
    return table, index.reshape(-1, n), taps.weight.reshape(-1, n)


def gather_tap_image_for_backward(table: Tensor, taps: Taps) -> tuple[Tensor, TapGather]:
    """:func:`gather_tap_image` and what :func:`gather_tap_image_backward` needs, without
    autograd (so it also runs inside a registered op, :mod:`.library`): the ATen kernels
    autograd would call for ``embedding_bag``, at the same speed."""
    kh, t, kw, _, n = taps.index.shape
    channels = table.shape[1]
    bag_table, index, weight = _bag_arguments(table, taps)
    index, weight = index.reshape(-1), weight.reshape(-1)
    offsets = torch.arange(0, index.numel(), n, device=index.device)
    rows, offset2bag, bag_size, max_indices = torch.ops.aten._embedding_bag(
        bag_table, index, offsets, False, 0, False, weight, False, -1)
    image = rows.view(1, kh, kw * t, channels).permute(0, 3, 1, 2)
    return image, TapGather(bag_table, index, offsets, weight, offset2bag, bag_size,
                            max_indices, taps.weight.shape, channels)


def gather_tap_image_backward(gather: TapGather, grad_image: Tensor, need_table: bool,
                              need_weight: bool) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of :func:`gather_tap_image` for the table (its shape) and the tap weights
    (the taps' shape) from the tap image's gradient."""
    grad_rows = grad_image.permute(0, 2, 3, 1).reshape(-1, gather.table.shape[1])
    grad_table = grad_weight = None
    if need_table:
        grad_table = torch.ops.aten._embedding_bag_backward(
            grad_rows, gather.index, gather.offsets, gather.offset2bag, gather.bag_size,
            gather.max_indices, gather.table.shape[0], False, 0, False, gather.weight, -1,
        ).view(-1, gather.channels)
    if need_weight:
        grad_weight = torch.ops.aten._embedding_bag_per_sample_weights_backward(
            grad_rows, gather.table, gather.index, gather.offsets, gather.offset2bag, 0, -1,
        ).view(gather.taps_shape)
    return grad_table, grad_weight
