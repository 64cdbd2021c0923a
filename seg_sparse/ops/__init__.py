"""Plain-torch convolution operators (no mmseg / mmcv imports).

* :func:`deform_conv2d` -- drop-in for ``torchvision.ops.deform_conv2d`` (DCN v1 / v2, conv and
  offset groups) computed as gathered bilinear taps + one GEMM, forward and backward; on CUDA
  it runs torchvision's kernel instead (faster there).
* :class:`DeformConv2d` -- ``torchvision.ops.DeformConv2d`` (same parameters and state dict)
  running :func:`deform_conv2d`.
* :func:`deform_conv2d_op` -- the same as the registered op ``seg_sparse::deform_conv2d``
  (a fake implementation and a backward): what ``torch.compile`` / ``torch.export`` see.
* :func:`deform_conv2d_at` / :func:`conv2d_at` -- the deformable / plain convolution at a subset
  of output positions, channels-last rows in and out (sparse inference).

Kernels live in one folder per backend: :mod:`.cpu` (pure torch; fast on CPU, correct on
any device) and, when Triton is installed, :mod:`.triton` (CUDA). Which backend runs a sampled
layer is decided in one place, :mod:`seg_sparse.sampling.execution`. See docs/deform_conv.md.
"""

from .cpu import (
    TORCHVISION_DEVICES,
    DeformConv2d,
    conv2d_at,
    deform_conv2d,
    deform_conv2d_at,
)
from .library import deform_conv2d_op

__all__ = [
    "TORCHVISION_DEVICES",
    "DeformConv2d",
    "conv2d_at",
    "deform_conv2d",
    "deform_conv2d_at",
    "deform_conv2d_op",
]
