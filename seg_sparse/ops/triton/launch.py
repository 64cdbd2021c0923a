"""What every kernel launch of this package shares: block sizes, the dot's precision, dtypes.

The kernels use only triton.language builtins (no ``@jit`` helpers of its standard library such
as ``tl.zeros`` / ``tl.cdiv``): those are defined when triton is first imported, and in a
process that imported triton before ``TRITON_INTERPRET=1`` was set they could not run in the
interpreter.

Block sizes are heuristics, not autotuned: ``tl.dot`` needs at least 16 in every dimension, so
each block is the next power of two of its extent, clamped to [16, limit]. Tiny shapes (the
interpreter tests) get 16-wide blocks, the paper's layers the limits below.
"""

from __future__ import annotations

import torch
import triton

#: Set at import: kernels defined now run in Triton's interpreter (``TRITON_INTERPRET=1``).
INTERPRETED = bool(triton.knobs.runtime.interpret)

#: Largest block per dimension: rows (positions), output channels, reduction channels. The
#: interpreter's cost is per program and operation, not per element, so it gets fewer, larger
#: row blocks (the same code paths: early exit, masked tails).
MAX_BLOCK_ROWS = 256 if INTERPRETED else 64
MAX_BLOCK_OUT = 64
MAX_BLOCK_REDUCE = 32
#: The interpolation fill: positions x channels per program.
FILL_BLOCK_ROWS = 256 if INTERPRETED else 32
FILL_MAX_BLOCK_CHANNELS = 64

#: Activation dtypes the kernels take (weights in the same dtype; biases and accumulation in
#: float32).
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def block(extent: int, limit: int) -> int:
    """A power-of-two block covering ``extent`` (at least 16, at most ``limit``)."""
    return max(16, min(limit, triton.next_power_of_2(max(1, extent))))


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot``'s precision for float32 operands: TF32 when torch allows it for matmuls
    (``torch.backends.cuda.matmul.allow_tf32``, i.e. a float32 matmul precision below
    'highest'), else IEEE float32, so the kernels round like torch's own GEMMs."""
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "ieee"


def upcast_dot(dtype: torch.dtype) -> bool:
    """Whether a kernel casts its dot operands to float32 first: only in the interpreter, whose
    ``tl.dot`` mis-computes bfloat16 (numpy has no bfloat16; float16 is exact there)."""
    return INTERPRETED and dtype == torch.bfloat16


def check_rows(name: str, t: torch.Tensor, dtype: torch.dtype | None = None) -> None:
    """ValueError unless ``t`` is a 2-D table of rows with contiguous channels (of ``dtype``)."""
    if t.dim() != 2 or (t.shape[1] > 1 and t.stride(1) != 1):
        raise ValueError(f"{name} must be rows (N, C) with contiguous channels, got shape "
                         f"{tuple(t.shape)}, strides {t.stride()}")
    if dtype is not None and t.dtype != dtype:
        raise ValueError(f"{name} must be {dtype}, got {t.dtype}")
    if t.dtype not in KERNEL_DTYPES:
        raise ValueError(f"{name}: the kernels take {KERNEL_DTYPES}, got {t.dtype}")
