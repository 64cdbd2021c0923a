"""The pure-torch convolution kernels: bilinear (or integer) taps gathered from channels-last
rows + one GEMM, dense or at given output positions, forward and backward.

The fast path on CPU (docs/deform_conv.md); they run on any device and are the reference that
other backends (:mod:`seg_sparse.ops.triton`) are tested against.
"""

from .deform_conv import (
    TORCHVISION_DEVICES,
    DeformConv2d,
    conv2d_at,
    deform_conv2d,
    deform_conv2d_at,
)

__all__ = ["TORCHVISION_DEVICES", "DeformConv2d", "conv2d_at", "deform_conv2d", "deform_conv2d_at"]
