"""The gathered 1x1 convolution: rows gathered by a device index, one GEMM, bias, ReLU.

``out[r] = act(table[index[r]] @ weight + bias)`` for the ``count`` rows of a fixed-capacity
index (:mod:`.positions`); the rows are loaded straight into the GEMM's operand tiles (no
gathered copy in memory), the bias is a folded BatchNorm's shift. The result goes either to
row r of a compact buffer or back to row ``index[r]`` (scattered). Without an index the rows
are the table's first ``count`` rows (a compact buffer from another kernel).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

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
def _gathered_gemm_kernel(
    x_ptr, x_stride, index_ptr, count_ptr, w_ptr, bias_ptr, out_ptr, out_stride,
    K, N,
    HAS_INDEX: tl.constexpr, HAS_BIAS: tl.constexpr, RELU: tl.constexpr,
    SCATTER: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
):
    count = tl.load(count_ptr)
    start = tl.program_id(0) * BM
    if start >= count:  # past the sampled rows: nothing to do
        return
    rm = (start + tl.arange(0, BM)).to(tl.int64)
    valid = rm < count
    if HAS_INDEX:
        src = tl.load(index_ptr + rm, mask=valid, other=0).to(tl.int64)
    else:
        src = rm
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    n_ok = rn < N
    acc = tl.full((BM, BN), 0.0, tl.float32)
    for k0 in range(0, K, BK):
        rk = k0 + tl.arange(0, BK)
        k_ok = rk < K
        a = tl.load(x_ptr + src[:, None] * x_stride + rk[None, :],
                    mask=valid[:, None] & k_ok[None, :], other=0.0)
        b = tl.load(w_ptr + rk[:, None] * N + rn[None, :],
                    mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    if RELU:
        acc = tl.maximum(acc, 0.0)
    if SCATTER:
        dst = src
    else:
        dst = rm
    tl.store(out_ptr + dst[:, None] * out_stride + rn[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=valid[:, None] & n_ok[None, :])


def gathered_linear(
    table: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    index: torch.Tensor | None = None,
    count: torch.Tensor | None = None,
    relu: bool = False,
    scatter: bool = False,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``act(table[index[:count]] @ weight + bias)``.

    ``table`` (M, K) rows with contiguous channels; ``weight`` (K, N) contiguous, the table's
    dtype; ``bias`` (N,) (float32 is best); ``index`` (capacity,) int32 positions into the
    table and ``count`` (1,) int32 on the device (without ``index``: rows 0..count of the
    table; without ``count``: all rows of the index, or of the table). Compact output
    (capacity, N), rows past the count left as allocated; ``scatter``: rows ``index[r]`` of
    ``out`` (M', N) instead, the other rows untouched.
    """
    check_rows("table", table)
    if weight.dim() != 2 or weight.shape[0] != table.shape[1] or not weight.is_contiguous():
        raise ValueError(f"weight must be contiguous ({table.shape[1]}, N) for a table of "
                         f"{table.shape[1]} channels, got {tuple(weight.shape)}")
    if weight.dtype != table.dtype:
        raise ValueError(f"weight is {weight.dtype}, the table {table.dtype}: cast one")
    n_out = weight.shape[1]
    if bias is not None and bias.shape != (n_out,):
        raise ValueError(f"bias must have shape ({n_out},), got {tuple(bias.shape)}")
    if scatter and index is None:
        raise ValueError("a scattered output needs the index it scatters to")
    capacity = index.shape[0] if index is not None else table.shape[0]
    if count is None:
        count = torch.full((1,), capacity, dtype=torch.int32, device=table.device)
    if out is None:
        if scatter:
            raise ValueError("a scattered output needs out=, the map it is written into")
        out = table.new_empty(capacity, n_out)
    check_rows("out", out)
    if out.shape[1] != n_out:
        raise ValueError(f"out has {out.shape[1]} channels, the weight gives {n_out}")
    if capacity == 0 or n_out == 0:
        return out
    bm = block(capacity, MAX_BLOCK_ROWS)
    bn = block(n_out, MAX_BLOCK_OUT)
    bk = block(table.shape[1], MAX_BLOCK_REDUCE)
    grid = (triton.cdiv(capacity, bm), triton.cdiv(n_out, bn))
    _gathered_gemm_kernel[grid](
        table, table.stride(0), index if index is not None else count, count, weight,
        bias if bias is not None else weight, out, out.stride(0), table.shape[1], n_out,
        HAS_INDEX=index is not None, HAS_BIAS=bias is not None, RELU=relu, SCATTER=scatter,
        UPCAST=upcast_dot(table.dtype), PRECISION=dot_precision(table.dtype),
        BM=bm, BN=bn, BK=bk,
    )
    return out
