"""``seg_sparse::deform_conv2d``: :func:`~.deform_conv.deform_conv2d` as a registered torch op.

``torch.compile`` and ``torch.export`` cannot trace the taps implementation (an autograd
function over Python-planned tiles whose count depends on the sizes); as an op with a fake
(shape) implementation and a registered backward it is one opaque node of the graph, run by
the same eager code. :func:`~.deform_conv.deform_conv2d` calls it while compiling or
exporting, so an exported program holds ``seg_sparse.deform_conv2d`` nodes: load it after
``import seg_sparse.ops`` (docs/deployment.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .cpu.deform_conv import deform_conv2d as _eager_deform_conv2d
from .cpu.deform_conv import dense_call, tap_conv_backward, tap_layout


@torch.library.custom_op("seg_sparse::deform_conv2d", mutates_args=())
def deform_conv2d_op(input: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None,
                     stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                     mask: Tensor | None) -> Tensor:
    """``torchvision.ops.deform_conv2d``'s arguments, computed by the taps (any device)."""
    return _eager_deform_conv2d(input, offset, weight, bias, tuple(stride), tuple(padding),
                                tuple(dilation), mask, use_taps=True)


@deform_conv2d_op.register_fake
def _(input, offset, weight, bias, stride, padding, dilation, mask):
    b, _, h, w = input.shape
    kh, kw = weight.shape[2:]
    out_h = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    # the layout the taps give (deform_conv.dense_call): channels-last in, channels-last out
    rows_out = input.is_contiguous(memory_format=torch.channels_last) \
        and not input.is_contiguous()
    fmt = torch.channels_last if rows_out else torch.contiguous_format
    return torch.empty((b, weight.shape[0], out_h, out_w), dtype=input.dtype,
                       device=input.device, memory_format=fmt)


@torch.library.custom_op("seg_sparse::deform_conv2d_backward", mutates_args=())
def deform_conv2d_backward_op(
    grad: Tensor, input: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None,
    stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
    mask: Tensor | None, needs: Sequence[bool],
) -> list[Tensor]:
    """Gradients [input, offset, mask, weight, bias] of :func:`deform_conv2d_op`; an empty
    tensor where ``needs`` is False or the argument is None."""
    call = dense_call(input, offset, weight, bias, tuple(stride), tuple(padding),
                      tuple(dilation), mask)
    table = call.table.contiguous()
    layout = tap_layout(table, call.geom, None, call.count, offset, weight, not call.rows_out)
    grad = grad.permute(0, 2, 3, 1).reshape(call.count, -1) if call.rows_out else grad
    grads = tap_conv_backward(layout, table, offset, mask, weight, bias, grad,
                              tuple(bool(n) for n in needs))
    grad_table = grads[0]
    if grad_table is not None:
        b, c, h, w = input.shape
        grad_table = grad_table.view(b, h, w, c).permute(0, 3, 1, 2).contiguous(
            memory_format=_format_of(input))
    return [input.new_empty(0) if g is None else g for g in (grad_table, *grads[1:])]


def _format_of(t: Tensor) -> torch.memory_format:
    return torch.channels_last if t.is_contiguous(memory_format=torch.channels_last) \
        and not t.is_contiguous() else torch.contiguous_format


@deform_conv2d_backward_op.register_fake
def _(grad, input, offset, weight, bias, stride, padding, dilation, mask, needs):
    # the layouts tap_conv_backward gives: empty_like / zeros_like, a 1-D bias sum
    made = (torch.empty_like(input, memory_format=_format_of(input)),
            *(None if t is None else torch.empty_like(t) for t in (offset, mask, weight)),
            None if bias is None else bias.new_empty(bias.shape))
    return [t if need and t is not None else input.new_empty(0)
            for need, t in zip(needs, made)]


def _setup_context(ctx, inputs, output) -> None:
    input, offset, weight, bias, stride, padding, dilation, mask = inputs
    ctx.geometry = (stride, padding, dilation)
    ctx.has = (bias is not None, mask is not None)
    ctx.save_for_backward(input, offset, weight, bias, mask)


def _backward(ctx, grad: Tensor):
    input, offset, weight, bias, mask = ctx.saved_tensors
    need_input, need_offset, need_weight, need_bias, *_, need_mask = ctx.needs_input_grad
    needs = [need_input, need_offset, need_mask and ctx.has[1], need_weight,
             need_bias and ctx.has[0]]
    g_input, g_offset, g_mask, g_weight, g_bias = deform_conv2d_backward_op(
        grad, input, offset, weight, bias, *ctx.geometry, mask, needs)
    pick = [g if n else None for g, n in zip((g_input, g_offset, g_mask, g_weight, g_bias),
                                             needs)]
    g_input, g_offset, g_mask, g_weight, g_bias = pick
    return g_input, g_offset, g_weight, g_bias, None, None, None, g_mask


deform_conv2d_op.register_autograd(_backward, setup_context=_setup_context)
