"""Convolution taps as (row index, weight) pairs into a channels-last table, and their gather.

A k x k convolution at output position p reads, for every kernel point, one value per input
channel. Both the plain and the deformable convolution are written here as a list of *taps*:
for every position and kernel point, ``n`` row indices into the input table (``B*H*W`` rows of
``C`` channels, channels-last) and ``n`` weights that are shared by all channels of the row.
A plain conv has one tap per kernel point (weight 1 inside the image, 0 in the zero padding); a
deformable conv has four, the bilinear corners of its sampling point, so the same gather
(:func:`gather_columns`, one ``embedding_bag``) and the same GEMM serve both.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def __getitem__(self, positions: slice) -> Taps:
        return Taps(self.index[positions], self.weight[positions])

    def detached(self, requires_grad: bool) -> Taps:
        """The same taps with a weight that is a new autograd leaf."""
        return Taps(self.index, self.weight.detach().requires_grad_(requires_grad))

    def shifted(self, rows: int) -> Taps:
        """The same taps into a table that starts ``rows`` rows later (a slice of the table)."""
        return Taps(self.index - rows, self.weight) if rows else self

    def row_range(self) -> tuple[int, int]:
        """First and one-past-last table row the taps read."""
        return int(self.index.min()), int(self.index.max()) + 1


def _neighbour_taps(
    first_row: Tensor, geom: ConvGeometry, low: Tensor, frac: Tensor | None,
    mask: Tensor | None = None,
) -> Taps:
    """Taps from per-axis neighbours, both axes packed in one tensor (fewer, larger ops).

    ``low`` (T, K, D, 2) holds the integer (y, x) at or below each sampling point and ``frac``
    its fractional part (None: integer points, one tap of weight 1). Neighbours outside the
    image weigh 0; their coordinates are clamped into it, so their rows stay near the rows the
    other taps read (a tile's table slice stays small). Taps are the outer products of the y
    and x neighbours: (T, K, D, 4) corners (y0, x0), (y0, x1), (y1, x0), (y1, x1), or
    (T, K, D, 1).
    """
    size = torch.tensor([geom.in_h, geom.in_w], device=low.device).view(2, 1)
    if frac is None:
        neighbours = low.unsqueeze(-1)  # (T, K, D, 2, 1)
    else:
        neighbours = low.unsqueeze(-1) + torch.arange(2, device=low.device)  # (T, K, D, 2, 2)
    inside = (neighbours >= 0) & (neighbours < size)
    neighbours = torch.clamp(neighbours, min=torch.zeros_like(size), max=size - 1)
    if frac is None:
        weights = inside
    else:
        weights = torch.stack((1 - frac, frac), dim=-1) * inside
    wy, wx = weights.unbind(-2)
    if mask is not None:  # modulate the y factor: 2 products per point instead of 4
        wy = wy * mask.unsqueeze(-1)
    ny, nx = neighbours.unbind(-2)
    first_row = first_row.view(first_row.shape[0], *(1,) * (ny.dim() - 1))
    index = (first_row + ny * geom.in_w).unsqueeze(-1) + nx.unsqueeze(-2)
    return Taps(index.flatten(-2), (wy.unsqueeze(-1) * wx.unsqueeze(-2)).flatten(-2))


def integer_taps(geom: ConvGeometry, positions: Tensor, dtype: torch.dtype) -> Taps:
    """Taps of a plain convolution: one per kernel point, weight 1 inside the image, 0 in the
    zero padding; shape (T, K, 1, 1)."""
    first_row, y, x = geom.kernel_coordinates(positions)
    taps = _neighbour_taps(first_row, geom, torch.stack((y, x), dim=-1).unsqueeze(2), None)
    return Taps(taps.index, taps.weight.to(dtype))


def bilinear_taps(
    geom: ConvGeometry, positions: Tensor, offset: Tensor, mask: Tensor | None = None
) -> Taps:
    """Taps of a deformable convolution: the four bilinear corners of every sampling point.

    ``offset`` (T, D, K, 2) holds (dy, dx) per deformable group and kernel point (torchvision's
    channel order reshaped), ``mask`` (T, D, K) the DCNv2 modulation. A sampling point at
    ``y = oy * stride - pad + i * dilation + dy`` (same for x) reads the zero-padded image
    bilinearly, as torchvision's kernel does: corners outside the image weigh 0, so points at
    or beyond one pixel outside read 0. The weights are differentiable in ``offset`` and
    ``mask`` (the corner indices are not), which gives the offset and mask gradients.
    Shape (T, K, D, 4).
    """
    first_row, y, x = geom.kernel_coordinates(positions)
    base = torch.stack((y, x), dim=-1).unsqueeze(2).to(offset.dtype)  # (T, K, 1, 2)
    point = base + offset.transpose(1, 2)  # (T, K, D, 2): every deformable group's point
    # floor as a division: torch.floor's CPU kernel goes multi-threaded from 2048 elements on,
    # which costs a thread-pool round trip per call (milliseconds on a loaded machine)
    low = torch.div(point.detach(), 1, rounding_mode="floor")
    frac = point - low
    return _neighbour_taps(first_row, geom, low.long(), frac,
                           None if mask is None else mask.transpose(1, 2))


def gather_tap_image(table: Tensor, taps: Taps, kernel: tuple[int, int]) -> Tensor:
    """The taps of T positions as a channels-last *tap image* (1, C, kh, kw * T).

    Pixel (i, t * kw + j) holds the value that kernel point (i, j) of position t reads, so a
    kh x kw convolution with stride (kh, kw) over the image is the convolution at the T
    positions: one GEMM, run by the direct-convolution kernels (on CPU, oneDNN's run at about
    twice the speed of its or MKL's GEMM on the AMD machine of docs/benchmarks.md). Conv groups
    need nothing special. One ``embedding_bag`` (the weighted sum of each tap list's rows)
    fills the image; with several deformable groups the table is viewed as D rows of C / D
    channels per input position, one list per group.
    """
    t, k, d, n = taps.index.shape
    kh, kw = kernel
    channels = table.shape[1]
    # tap lists in the image's memory order (i, t, j, d)
    index = taps.index.view(t, kh, kw, d, n).transpose(0, 1)
    weight = taps.weight.to(table.dtype).view(t, kh, kw, d, n).transpose(0, 1)
    if d > 1:  # row q, group g of the table is row q * d + g of the sliced view
        index = index * d + torch.arange(d, device=index.device).view(d, 1)
        table = table.view(-1, channels // d)
    rows = F.embedding_bag(
        index.reshape(-1, n), table, per_sample_weights=weight.reshape(-1, n), mode="sum"
    )
    return rows.view(1, kh, kw * t, channels).permute(0, 3, 1, 2)
