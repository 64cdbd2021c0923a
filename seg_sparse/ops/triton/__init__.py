"""Triton kernels of the sparse path (CUDA; on CPU only in Triton's interpreter).

Importing this package needs ``triton`` (``pip install -e ".[cuda]"``); nothing else in
seg_sparse imports it unless triton is installed and a CUDA device is there
(:func:`seg_sparse.sampling.triton_backend.triton_backend_available`). Plain torch + triton.

* :func:`compact_positions` -- a mask's sampled positions in fixed-capacity buffers, the count
  on the device (no host sync);
* :func:`gathered_linear` -- the gathered 1x1 conv: row gather + GEMM + bias + ReLU, compact
  or scattered output;
* :func:`conv2d_at_positions` -- plain / deformable k x k conv at sampled positions (implicit
  GEMM over the gathered taps);
* :func:`interpolate_fill` -- the normalized Gaussian interpolation of every position from the
  computed rows, fused with a residual add, a shift and ReLU.

See docs/gpu.md.
"""

from .conv import ConvWeights, conv2d_at_positions
from .fill import FillTaps, interpolate_fill
from .gemm import gathered_linear
from .launch import INTERPRETED
from .positions import Positions, compact_positions

__all__ = [
    "INTERPRETED",
    "ConvWeights",
    "FillTaps",
    "Positions",
    "compact_positions",
    "conv2d_at_positions",
    "gathered_linear",
    "interpolate_fill",
]
