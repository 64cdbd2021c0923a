"""Deformable and plain convolutions as gathered taps + one GEMM, dense or at given positions.

``deform_conv2d`` is a drop-in for ``torchvision.ops.deform_conv2d`` (same arguments, offset /
mask layout and results). It and the position variants run one autograd function: per tile of
output positions, one ``embedding_bag`` gathers the taps of every kernel point (bilinear
corners, or integer neighbours for a plain conv) from a channels-last table of input rows into
a tap image (:mod:`.taps`), and one strided convolution over that image is the GEMM. Tap images
exist one tile at a time (``TILE_BYTES``); the backward recomputes them tile by tile instead of
storing them, so a training step holds no more than a plain convolution does besides one tile.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable
from torchvision import ops as tv_ops

from .taps import (
    ConvGeometry,
    IntPair,
    Taps,
    bilinear_taps,
    bilinear_taps_backward,
    gather_tap_image,
    gather_tap_image_backward,
    gather_tap_image_for_backward,
    integer_taps,
)

#: Upper bound of one tile's tap image in bytes (positions x K x C_in values), per device type.
#: On CPU a tile that stays in the caches and below glibc's mmap threshold (no page faults on
#: every allocation) beats fewer, larger ones; elsewhere fewer launches win.
TILE_BYTES = {"cpu": 16 << 20, "default": 512 << 20}
#: Device types on which :func:`deform_conv2d` runs torchvision's kernel (faster there; on
#: "meta", shapes only, torchvision's shape function: the taps need values).
TORCHVISION_DEVICES = frozenset({"cuda", "meta"})
#: Taps per chunk of the tap computation, per device type (absent: one chunk per tile; see
#: ``_TapLayout``).
CHUNK_ELEMENTS = {"cpu": 32768}
#: From this many input channels :func:`conv2d_at` (one group) runs one GEMM per kernel point
#: over gathered input rows instead of tap images: with K = 9 x C_in in the tens of thousands a
#: 16 MB tile holds a few hundred positions and its convolution runs far below GEMM speed.
#: 3x3 -> 512 channels at 30 % of two 64x128 maps, 2 CPU threads: from 2048 channels 558 ms per
#: point vs 841 ms tap images (2560: 703 vs 1182); at 1024 the tap images win, 219 vs 277 ms.
PER_POINT_MIN_CHANNELS = 2048
#: Input rows gathered at once by the per-point path (bounds its buffer, keeps GEMMs large).
PER_POINT_ROWS = 8192


def _conv_taps(image: Tensor, weight: Tensor, groups: int) -> Tensor:
    """(T, C_out) rows: the convolution over a tap image (1, C, kh, kw * T)."""
    out = F.conv2d(image, weight, stride=weight.shape[2:], groups=groups)  # (1, C_out, 1, T)
    return out.permute(0, 2, 3, 1).reshape(-1, weight.shape[0])


def _conv_taps_backward(grad_rows: Tensor, image: Tensor, weight: Tensor, groups: int,
                        need_image: bool, need_weight: bool) -> tuple[Tensor | None, ...]:
    """Gradients of :func:`_conv_taps` for the tap image and the weight."""
    grad_out = grad_rows.view(1, 1, *grad_rows.shape).permute(0, 3, 1, 2)  # (1, C_out, 1, T)
    kernel = list(weight.shape[2:])
    # oneDNN's weight gradient of this strided convolution runs at a fraction of its GEMM speed
    # (measured 4-8x slower than below at 128 channels); the GEMM over the image's kernel rows
    # computes it directly when there is one group
    conv_weight = need_weight and groups > 1
    grad_image, grad_weight, _ = torch.ops.aten.convolution_backward(
        grad_out, image, weight, None, kernel, [0, 0], [1, 1], False, [0, 0], groups,
        [need_image, conv_weight, False],
    )
    if need_weight and not conv_weight:
        kh, kw = kernel
        c_out, c_in = weight.shape[:2]
        columns = image.permute(0, 2, 3, 1).reshape(kh, -1, kw * c_in)  # (kh, T, kw * C)
        grad_weight = torch.matmul(grad_rows.t(), columns)  # (kh, C_out, kw * C)
        grad_weight = grad_weight.view(kh, c_out, kw, c_in).permute(1, 3, 0, 2)
    return grad_image, grad_weight


class _Chunk(NamedTuple):
    """Consecutive positions whose taps are computed together (see :meth:`_TapLayout.taps`)."""

    tile: int  # the tile they belong to
    local: slice  # their positions within the tile
    rows: slice  # their positions overall (rows of the result / of positions)
    image: int  # all positions: the image they lie in ...
    in_image: slice  # ... and their positions within it


class _TapLayout:
    """Everything about one call except the tensors: geometry, groups, tiles and chunks.

    With ``positions`` None the call covers all B * H_out * W_out positions (dense), and the
    offset / mask are given as maps (B, C, H_out, W_out); otherwise as rows (N, C), one per
    position. ``nchw`` (dense only): the result is NCHW (B, C_out, H_out, W_out), not rows.

    Tiles bound the tap image (``TILE_BYTES``). Chunks split tiles for the tap math
    (``CHUNK_ELEMENTS`` taps, never across images): on CPU that keeps every one of its ~20
    small elementwise ops below torch's parallelisation grain (32768 elements), so each runs on
    the calling thread. Multi-threaded, each would be a thread-pool round trip, and on a machine
    whose cores are shared with other processes one round trip costs milliseconds (measured:
    the taps of a 64x128 layer took 364 ms on 2 threads of the loaded 2-core machine, 15 ms on
    one). Each chunk writes its taps straight into its tile's buffers in tap-image order.
    """

    def __init__(self, geom: ConvGeometry, groups: int, positions: Tensor | None, count: int,
                 table: Tensor, element_size: int, corners: int, nchw: bool = False) -> None:
        self.geom = geom
        self.groups = groups
        self.positions = positions
        self.count = count
        self.corners = corners  # taps per kernel point: 1 (plain) or 4 * offset groups
        self.nchw = nchw
        device = table.device.type
        per_position = geom.kernel_points * table.shape[1] * element_size
        tile = max(1, TILE_BYTES.get(device, TILE_BYTES["default"]) // per_position)
        chunk = tile
        chunk_elements = CHUNK_ELEMENTS.get(device)
        if chunk_elements is not None:
            chunk = min(tile, max(1, chunk_elements // (geom.kernel_points * corners)))
        # about equal chunks, tiles of whole chunks: no tiny remainder tile (torch runs
        # convolutions of fewer than 20480 input values with its slow reference kernel)
        chunks = math.ceil(count / chunk)
        chunk = math.ceil(count / chunks) if chunks else 1
        tiles = math.ceil(chunks / max(1, tile // chunk))
        tile = math.ceil(chunks / tiles) * chunk if tiles else 1
        self.tiles = [slice(start, min(start + tile, count)) for start in range(0, count, tile)]
        per_image = geom.out_h * geom.out_w
        self.chunks = []
        for index, span in enumerate(self.tiles):
            start = span.start
            while start < span.stop:
                stop = min(span.stop, start + chunk)
                image = 0
                if positions is None:  # never across images
                    image = start // per_image
                    stop = min(stop, (image + 1) * per_image)
                first = image * per_image
                self.chunks.append(_Chunk(
                    index, slice(start - span.start, stop - span.start), slice(start, stop),
                    image, slice(start - first, stop - first),
                ))
                start = stop

    @property
    def dense(self) -> bool:
        return self.positions is None

    def chunk_rows(self, values: Tensor, chunk: _Chunk) -> Tensor:
        """The chunk's (n, C) rows of a per-position tensor: a map (dense) or rows."""
        if self.dense:
            return values.view(*values.shape[:2], -1)[chunk.image, :, chunk.in_image].t()
        return values[chunk.rows]

    def set_chunk_rows(self, values: Tensor, chunk: _Chunk, rows: Tensor) -> None:
        if self.dense:
            values.view(*values.shape[:2], -1)[chunk.image, :, chunk.in_image] = rows.t()
        else:
            values[chunk.rows] = rows

    def _positions(self, chunk: _Chunk, device: torch.device) -> Tensor:
        if self.dense:
            return torch.arange(chunk.rows.start, chunk.rows.stop, device=device)
        return self.positions[chunk.rows]

    def _offset_mask(self, offset: Tensor, mask: Tensor | None,
                     chunk: _Chunk) -> tuple[Tensor, Tensor | None]:
        """A chunk's offsets (n, D, K, 2) and mask (n, D, K)."""
        k = self.geom.kernel_points
        offset = self.chunk_rows(offset, chunk)
        offset = offset.reshape(offset.shape[0], -1, k, 2)
        if mask is not None:
            mask = self.chunk_rows(mask, chunk).reshape(offset.shape[:3])
        return offset, mask

    def taps(self, offset: Tensor | None, mask: Tensor | None, dtype: torch.dtype,
             device: torch.device) -> list[Taps]:
        """Per tile, its taps in tap-image order (kh, T, kw, D, n): integer taps without
        ``offset``, else bilinear ones."""
        kh, kw = self.geom.kernel
        shape = (kh, 0, kw, self.corners // 4 if offset is not None else 1,
                 4 if offset is not None else 1)
        tiles = [Taps(torch.empty(shape[:1] + (t.stop - t.start,) + shape[2:], dtype=torch.long,
                                  device=device),
                      torch.empty(shape[:1] + (t.stop - t.start,) + shape[2:], dtype=dtype,
                                  device=device))
                 for t in self.tiles]
        for chunk in self.chunks:
            positions = self._positions(chunk, device)
            if offset is None:
                taps = integer_taps(self.geom, positions, dtype)
            else:
                taps = bilinear_taps(self.geom, positions, *self._offset_mask(offset, mask, chunk))
            n = positions.shape[0]
            for dst, src in zip((tiles[chunk.tile].index, tiles[chunk.tile].weight),
                                (taps.index, taps.weight)):
                dst[:, chunk.local] = src.view(n, kh, kw, *src.shape[2:]).transpose(0, 1)
        return tiles

    def taps_backward(self, offset: Tensor, mask: Tensor | None,
                      grad_weights: list[Tensor]) -> tuple[Tensor, Tensor | None]:
        """Offset and mask gradients (shaped as given) from the gradients of the tiles' tap
        weights (tap-image order)."""
        grad_offset = torch.empty_like(offset)
        grad_mask = None if mask is None else torch.empty_like(mask)
        k = self.geom.kernel_points
        for chunk in self.chunks:
            grad = grad_weights[chunk.tile][:, chunk.local].transpose(0, 1)
            grad = grad.reshape(grad.shape[0], k, *grad.shape[3:])  # (n, K, D, 4)
            g_offset, g_mask = bilinear_taps_backward(
                self.geom, self._positions(chunk, offset.device),
                *self._offset_mask(offset, mask, chunk), grad,
            )
            self.set_chunk_rows(grad_offset, chunk, g_offset.reshape(g_offset.shape[0], -1))
            if grad_mask is not None:
                self.set_chunk_rows(grad_mask, chunk, g_mask.reshape(g_mask.shape[0], -1))
        return grad_offset, grad_mask

    def _pieces(self, tile: slice) -> list[tuple[int, slice, slice]]:
        """(image, positions in that image, rows of the tile) of a tile of all positions."""
        per_image = self.geom.out_h * self.geom.out_w
        pieces = []
        start = tile.start
        while start < tile.stop:
            image = start // per_image
            stop = min(tile.stop, (image + 1) * per_image)
            first = image * per_image
            pieces.append((image, slice(start - first, stop - first),
                           slice(start - tile.start, stop - tile.start)))
            start = stop
        return pieces

    def new_output(self, table: Tensor, c_out: int) -> Tensor:
        if self.nchw:
            per_image = self.geom.out_h * self.geom.out_w
            return table.new_empty(self.count // per_image, c_out, per_image)
        return table.new_empty(self.count, c_out)

    def write(self, out: Tensor, tile: slice, rows: Tensor) -> None:
        """Put a tile's (T, C_out) rows into the output (straight into NCHW: one pass)."""
        if not self.nchw:
            out[tile] = rows
            return
        for image, positions, part in self._pieces(tile):
            out[image, :, positions] = rows[part].t()

    def read(self, grad: Tensor, tile: slice) -> Tensor:
        """A tile's (T, C_out) rows of an output-shaped gradient (see :meth:`flat_grad`)."""
        if not self.nchw:
            return grad[tile]
        parts = [grad[image, :, positions].t() for image, positions, _ in self._pieces(tile)]
        return parts[0].contiguous() if len(parts) == 1 else torch.cat(parts)

    def flat_grad(self, grad: Tensor) -> Tensor:
        if self.nchw:  # the size is explicit: a batch of 0 cannot infer it
            return grad.reshape(grad.shape[0], grad.shape[1], self.geom.out_h * self.geom.out_w)
        return grad.contiguous()


class _TapConv(torch.autograd.Function):
    """The convolution at the layout's positions: sum over taps of the table rows, times the
    weight, plus the bias; rows (N, C_out) or NCHW (see :class:`_TapLayout`)."""

    @staticmethod
    def forward(ctx, table: Tensor, offset: Tensor | None, mask: Tensor | None, weight: Tensor,
                bias: Tensor | None, layout: _TapLayout) -> Tensor:
        taps = layout.taps(offset, mask, table.dtype, table.device)
        out = layout.new_output(table, weight.shape[0])
        for tile, tile_taps in zip(layout.tiles, taps):
            rows = _conv_taps(gather_tap_image(table, tile_taps), weight, layout.groups)
            if bias is not None:
                rows += bias
            layout.write(out, tile, rows)
        if layout.nchw:
            out = out.view(*out.shape[:2], layout.geom.out_h, layout.geom.out_w)
        ctx.layout = layout
        ctx.save_for_backward(table, offset, mask, weight, bias)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        grads = tap_conv_backward(ctx.layout, *ctx.saved_tensors, grad_out,
                                  ctx.needs_input_grad[:5])
        return (*grads, None)


def tap_conv_backward(layout: _TapLayout, table: Tensor, offset: Tensor | None, mask: Tensor | None,
                      weight: Tensor, bias: Tensor | None, grad_out: Tensor,
                      needs: tuple[bool, ...]) -> tuple[Tensor | None, ...]:
    """Gradients (table, offset, mask, weight, bias) of :class:`_TapConv` for the output
    gradient ``grad_out`` (shaped as its output), those with ``needs`` False None."""
    need_table, need_offset, need_mask, need_weight, need_bias = needs
    need_taps = need_offset or need_mask
    need_image = need_table or need_taps
    grad_out = layout.flat_grad(grad_out)
    grad_table = torch.zeros_like(table) if need_table else None
    grad_weight = torch.zeros_like(weight) if need_weight else None
    taps = layout.taps(offset, mask, table.dtype, table.device)
    grad_tap_weights = []
    for tile, tile_taps in zip(layout.tiles if need_image or need_weight else (), taps):
        # the table gradient of the rows these taps read, not of the whole table
        first, last = tile_taps.row_range() if need_table else (0, table.shape[0])
        image, gather = gather_tap_image_for_backward(table[first:last],
                                                      tile_taps.shifted(first))
        grad_image, grad_w = _conv_taps_backward(
            layout.read(grad_out, tile), image, weight, layout.groups, need_image, need_weight,
        )
        if need_weight:
            grad_weight += grad_w
        if not need_image:
            continue
        grad_rows, grad_taps = gather_tap_image_backward(gather, grad_image, need_table,
                                                         need_taps)
        if need_table:
            grad_table[first:last] += grad_rows
        if need_taps:
            grad_tap_weights.append(grad_taps)
    grad_offset = grad_mask = None
    if need_taps:
        grad_offset, grad_mask = layout.taps_backward(offset, mask, grad_tap_weights)
        grad_offset = grad_offset if need_offset else None
        grad_mask = grad_mask if need_mask else None
    grad_bias = None
    if need_bias:
        grad_bias = grad_out.sum((0, 2)) if layout.nchw else grad_out.sum(0)
    return grad_table, grad_offset, grad_mask, grad_weight, grad_bias


def _run(table: Tensor, geom: ConvGeometry, positions: Tensor | None, count: int,
         offset: Tensor | None, mask: Tensor | None, weight: Tensor,
         bias: Tensor | None, nchw: bool = False) -> Tensor:
    """The convolution at ``positions`` (None: all, offset / mask as maps) of the table's
    rows: (count, C_out) rows, or NCHW with ``nchw``. Under autocast in float32 like
    torchvision, cast back after."""
    table = table.contiguous()  # e.g. the (H*W, C) rows of one NCHW image are a transposed view
    device = table.device.type
    if not torch.is_autocast_enabled(device):
        layout = tap_layout(table, geom, positions, count, offset, weight, nchw)
        return _TapConv.apply(table, offset, mask, weight, bias, layout)

    def f32(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.float()

    with torch.autocast(device, enabled=False):
        layout = tap_layout(table, geom, positions, count, offset, weight, nchw, element_size=4)
        out = _TapConv.apply(f32(table), f32(offset), f32(mask), f32(weight), f32(bias), layout)
    return out.to(table.dtype)


def tap_layout(table: Tensor, geom: ConvGeometry, positions: Tensor | None, count: int,
              offset: Tensor | None, weight: Tensor, nchw: bool,
              element_size: int | None = None) -> _TapLayout:
    """The :class:`_TapLayout` of a call of :class:`_TapConv` (groups and corners from the
    weight's and the offset's channels)."""
    groups = table.shape[1] // weight.shape[1]
    corners = 1
    if offset is not None:
        corners = 4 * (offset.shape[1] // (2 * geom.kernel_points))
    element_size = table.element_size() if element_size is None else element_size
    return _TapLayout(geom, groups, positions, count, table, element_size, corners, nchw)


def _check_weight(weight: Tensor, channels: int, bias: Tensor | None) -> None:
    if weight.dim() != 4:
        raise ValueError(f"weight must be (C_out, C_in/groups, kh, kw), got {tuple(weight.shape)}")
    c_out, per_group = weight.shape[:2]
    if per_group == 0 or channels % per_group or c_out % (channels // per_group):
        raise ValueError(f"weight {tuple(weight.shape)} does not fit {channels} input channels: "
                         f"C_in must be a multiple of weight.shape[1] and C_out of the groups")
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},), got {tuple(bias.shape)}")


def _offset_groups(offset_channels: int, kernel_points: int, channels: int) -> int:
    groups, rest = divmod(offset_channels, 2 * kernel_points)
    if rest or groups == 0:
        raise ValueError(f"offset has {offset_channels} channels, expected a positive multiple "
                         f"of 2 * kh * kw = {2 * kernel_points}")
    if channels % groups:
        raise ValueError(f"{channels} input channels are not divisible by the {groups} offset "
                         f"groups that the offset's {offset_channels} channels imply")
    return groups


def deform_conv2d(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = (1, 1),
    padding: IntPair = (0, 0),
    dilation: IntPair = (1, 1),
    mask: Tensor | None = None,
    *,
    use_taps: bool | None = None,
) -> Tensor:
    """``torchvision.ops.deform_conv2d`` as gathered taps + one GEMM: same arguments, layouts
    and values (DCN v1, and v2 with ``mask``; conv groups from ``weight.shape[1]``, offset groups
    from ``offset.shape[1]``). Differentiable in input, offset, mask, weight and bias.

    input (B, C_in, H, W); offset (B, 2 * G_off * kh * kw, H_out, W_out) with channel
    ``g * 2 * kh * kw + 2 * k`` the y and the next one the x offset of kernel point
    k = i * kw + j of offset group g; mask (B, G_off * kh * kw, H_out, W_out). The result has
    the input's memory format (channels-last input: channels-last output, no layout copies).

    ``use_taps``: None (default) runs the faster implementation for the input's device: the
    taps on CPU (3-9x faster than torchvision's kernel at 128-512 channels, forward and
    backward), torchvision's kernel on the device types in ``TORCHVISION_DEVICES`` (CUDA: 2-5x
    faster than the taps on an H100); True / False force the taps / torchvision's kernel.
    Measurements: docs/deform_conv.md. Under ``torch.jit`` tracing / scripting (mmengine's
    FLOP counter, ONNX export) torchvision's op runs, so the graph holds one
    ``torchvision::deform_conv2d`` node.
    """
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        use_taps = False
    elif use_taps is None:
        use_taps = input.device.type not in TORCHVISION_DEVICES
    if not use_taps:
        return tv_ops.deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask)
    if torch.compiler.is_compiling():  # one opaque node in the graph (.library)
        return torch.ops.seg_sparse.deform_conv2d(input, offset, weight, bias, _ints(stride),
                                                  _ints(padding), _ints(dilation), mask)
    call = dense_call(input, offset, weight, bias, stride, padding, dilation, mask)
    out = _run(call.table, call.geom, None, call.count, offset, mask, weight, bias,
               nchw=not call.rows_out)
    if call.rows_out:
        return out.view(*call.out_shape, -1).permute(0, 3, 1, 2)
    return out


def _ints(value: IntPair) -> list[int]:
    return [value, value] if isinstance(value, int) else [int(v) for v in value]


class DenseCall(NamedTuple):
    """A checked :func:`deform_conv2d` call over all positions: the input's channels-last
    rows, the geometry, the number of output positions (B * H_out * W_out) and whether the
    result is made as rows (channels-last input: a channels-last result) or NCHW."""

    table: Tensor
    geom: ConvGeometry
    count: int
    out_shape: tuple[int, int, int]
    rows_out: bool


def dense_call(input: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None,
               stride: IntPair, padding: IntPair, dilation: IntPair,
               mask: Tensor | None) -> DenseCall:
    """Check the arguments of :func:`deform_conv2d` (ValueError naming the bad one) and lay
    the input out as rows."""
    if input.dim() != 4 or offset.dim() != 4:
        raise ValueError(f"input and offset must be 4-D (B, C, H, W), got {tuple(input.shape)} "
                         f"and {tuple(offset.shape)}")
    b, c_in, h, w = input.shape
    _check_weight(weight, c_in, bias)
    geom = ConvGeometry.of((h, w), tuple(weight.shape[2:]), stride, padding, dilation)
    k = geom.kernel_points
    offset_groups = _offset_groups(offset.shape[1], k, c_in)
    out_shape = (b, geom.out_h, geom.out_w)
    if (offset.shape[0], *offset.shape[2:]) != out_shape:
        raise ValueError(f"offset of shape {tuple(offset.shape)} does not match the output's "
                         f"(batch, H_out, W_out) = {out_shape}")
    if mask is not None and tuple(mask.shape) != (b, offset_groups * k, *out_shape[1:]):
        raise ValueError(f"mask must have shape {(b, offset_groups * k, *out_shape[1:])}, got "
                         f"{tuple(mask.shape)}")
    table = input.permute(0, 2, 3, 1).reshape(b * h * w, c_in)
    rows_out = input.is_contiguous(memory_format=torch.channels_last) \
        and not input.is_contiguous()
    return DenseCall(table, geom, b * geom.out_h * geom.out_w, out_shape, rows_out)


def _table(input: Tensor, in_hw: tuple[int, int] | None) -> tuple[Tensor, int, int, int]:
    """(rows, B, H, W) of a channels-last input given as (B, H, W, C) or as rows + in_hw."""
    if input.dim() == 4:
        if in_hw is not None and tuple(in_hw) != tuple(input.shape[1:3]):
            raise ValueError(f"in_hw={in_hw} contradicts the input's shape {tuple(input.shape)}")
        b, h, w, c = input.shape
    elif input.dim() == 2:
        if in_hw is None:
            raise ValueError("input given as rows (B*H*W, C) needs in_hw=(H, W)")
        h, w = in_hw
        b, rest = divmod(input.shape[0], h * w)
        if rest:
            raise ValueError(f"{input.shape[0]} input rows are not a whole number of "
                             f"{h}x{w} images")
        c = input.shape[1]
    else:
        raise ValueError(f"input must be (B, H, W, C) or rows (B*H*W, C), got "
                         f"{tuple(input.shape)}")
    return input.reshape(b * h * w, c), b, h, w


def _check_positions(positions: Tensor, count: int) -> None:
    if positions.dim() != 1 or positions.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"positions must be a 1-D int64 tensor, got {positions.dtype} of "
                         f"shape {tuple(positions.shape)}")
    if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= count):
        raise ValueError(f"positions must lie in [0, B * H_out * W_out) = [0, {count})")


def _at_positions(input: Tensor, positions: Tensor, weight: Tensor, bias: Tensor | None,
                  stride: IntPair, padding: IntPair, dilation: IntPair,
                  in_hw: tuple[int, int] | None,
                  check_positions: bool) -> tuple[Tensor, ConvGeometry]:
    """The checked input table and geometry of a convolution at ``positions``."""
    table, b, h, w = _table(input, in_hw)
    _check_weight(weight, table.shape[1], bias)
    geom = ConvGeometry.of((h, w), tuple(weight.shape[2:]), stride, padding, dilation)
    if check_positions:
        _check_positions(positions, b * geom.out_h * geom.out_w)
    return table, geom


def deform_conv2d_at(
    input: Tensor,
    positions: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    mask: Tensor | None = None,
    in_hw: tuple[int, int] | None = None,
    *,
    check_positions: bool = True,
) -> Tensor:
    """:func:`deform_conv2d` at the given output positions only: (N, C_out) rows.

    Contract (all channels-last, nothing is transposed):

    * ``input``: (B, H, W, C_in), or its rows (B*H*W, C_in) with ``in_hw=(H, W)``; a
      channels-last (B, C, H, W) tensor ``x`` is ``x.permute(0, 2, 3, 1)`` (a view);
    * ``positions``: (N,) int64 flat indices over (B, H_out, W_out), ``b * H_out * W_out +
      y * W_out + x``, with H_out / W_out from torch's conv output-size rule; any order,
      repeats allowed;
    * ``offset``: (N, 2 * G_off * kh * kw), row n the offsets of position n in torchvision's
      channel order (the dense offset map's channels at that position); ``mask``: (N, G_off *
      kh * kw) likewise.

    Row n of the result equals the dense result at ``positions[n]`` (up to float rounding).
    ``check_positions=False`` skips the range check (two host syncs) for positions known to be
    valid, e.g. from ``nonzero()`` on the output map.
    """
    table, geom = _at_positions(input, positions, weight, bias, stride, padding, dilation, in_hw,
                                check_positions)
    n = positions.shape[0]
    if offset.dim() != 2 or offset.shape[0] != n:
        raise ValueError(f"offset must be rows (N, 2 * offset_groups * kh * kw), one per "
                         f"position (N = {n}), got {tuple(offset.shape)}")
    offset_groups = _offset_groups(offset.shape[1], geom.kernel_points, table.shape[1])
    if mask is not None and tuple(mask.shape) != (n, offset_groups * geom.kernel_points):
        raise ValueError(f"mask must be ({n}, {offset_groups * geom.kernel_points}) rows, got "
                         f"{tuple(mask.shape)}")
    return _run(table, geom, positions.long(), n, offset, mask, weight, bias)


def conv2d_at(
    input: Tensor,
    positions: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    in_hw: tuple[int, int] | None = None,
    *,
    check_positions: bool = True,
) -> Tensor:
    """``F.conv2d`` at the given output positions only: (N, C_out) rows, same ``input`` /
    ``positions`` contract (and ``check_positions``) as :func:`deform_conv2d_at` (groups from
    ``weight.shape[1]``)."""
    table, geom = _at_positions(input, positions, weight, bias, stride, padding, dilation, in_hw,
                                check_positions)
    if weight.shape[1] == table.shape[1] >= PER_POINT_MIN_CHANNELS:
        device = table.device.type
        if not torch.is_autocast_enabled(device):  # in the input's dtype (float64 stays)
            return _conv_per_point(table, geom, positions.long(), weight, bias)
        # in float32 under autocast, like the tap-image path (_run)
        with torch.autocast(device, enabled=False):
            out = _conv_per_point(table.float(), geom, positions.long(), weight.float(),
                                  None if bias is None else bias.float())
        return out.to(table.dtype)
    return _run(table, geom, positions.long(), positions.shape[0], None, None, weight, bias)


def _conv_per_point(table: Tensor, geom: ConvGeometry, positions: Tensor, weight: Tensor,
                    bias: Tensor | None) -> Tensor:
    """:func:`conv2d_at` of an ungrouped conv as one GEMM per kernel point: the input rows of
    that point (zeroed in the padding) times its (C_in, C_out) weight, accumulated."""
    per_point = weight.permute(2, 3, 1, 0).reshape(geom.kernel_points, *weight.shape[1::-1])
    out = table.new_zeros(positions.shape[0], weight.shape[0]) if bias is None \
        else bias.expand(positions.shape[0], -1).clone()
    for start in range(0, positions.shape[0], PER_POINT_ROWS):
        taps = integer_taps(geom, positions[start:start + PER_POINT_ROWS], table.dtype)
        index = taps.index.flatten(1).t()  # (K, T), padding taps point at a valid row
        outside = (taps.weight.flatten(1).t() == 0).nonzero().t()  # (point, tap) pairs
        rows_out = out[start:start + PER_POINT_ROWS]
        for k in range(geom.kernel_points):
            rows = table.index_select(0, index[k])
            rows.index_fill_(0, outside[1][outside[0] == k], 0)
            rows_out.addmm_(rows, per_point[k])
    return out


class DeformConv2d(tv_ops.DeformConv2d):
    """``torchvision.ops.DeformConv2d`` (same constructor, parameters, state dict) computed by
    :func:`deform_conv2d`. Models keep calling the module, so its forward hooks (the FLOPs
    counter's) still fire, and torchvision checkpoints load unchanged."""

    def forward(self, input: Tensor, offset: Tensor, mask: Tensor | None = None) -> Tensor:
        return deform_conv2d(input, offset, self.weight, self.bias, self.stride, self.padding,
                             self.dilation, mask)
