"""Deformable convolutions (DCN v1 / v2) on ``seg_sparse.ops.deform_conv2d``.

Drop-in stand-ins for mmcv's ``DeformConv2d(Pack)`` and ``ModulatedDeformConv2d(Pack)`` when
mmcv's compiled ops are missing: same constructor arguments, same attribute and state-dict names
(``weight``, ``bias``, ``conv_offset.weight``, ``conv_offset.bias``), so mmcv-format checkpoints
load unchanged.

Offset layout: mmcv 2.1.0's kernel (``csrc/common/cuda/deform_conv_cuda_kernel.cuh``, shipped
with mmcv-lite) reads channel ``2 * (i * kw + j)`` as the y (row) offset and the next channel as
the x offset of kernel point (i, j), in blocks of ``2 * kh * kw`` channels per deformable group,
i.e. ``[y0, x0, y1, x1, ..., y8, x8]`` for a 3x3 kernel (as its docstrings say). torchvision's
``deform_conv2d`` uses the same layout (tests/test_compat_mmcv_ops.py checks it numerically), and
mmcv's own MLU code path hands the tensor to torchvision unchanged. ``seg_sparse.ops.deform_conv2d``
computes torchvision's function (with torchvision's kernel on CUDA, the faster tap formulation on
CPU). DCNv2's
``conv_offset`` predicts ``3 * G * kh * kw`` channels split in thirds ``(o1, o2, mask_logits)``;
the offset is ``cat(o1, o2)`` and the mask ``sigmoid(mask_logits)``, as in mmcv.

Not carried over: mmcv's renaming of pre-v2 ``<name>_offset`` keys on load (it relies on the
parent's full state dict, which torch 2.14 no longer passes to child modules).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from mmengine.utils import deprecated_api_warning
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from seg_sparse.ops import deform_conv2d

IntPair = int | tuple[int, int]


class _DeformConvBase(nn.Module):
    """Shared attributes of DCN v1/v2 (siblings, as in mmcv: v2 is not a subclass of v1)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair,
        padding: IntPair,
        dilation: IntPair,
        groups: int,
        deform_groups: int,
        with_bias: bool,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels {in_channels} and out_channels {out_channels} must be divisible "
                f"by groups {groups}"
            )
        if in_channels % deform_groups:
            raise ValueError(
                f"in_channels {in_channels} must be divisible by deform_groups {deform_groups}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deform_groups = deform_groups
        self.transposed = False  # nn.Conv2d look-alike attributes (mmcv sets them too)
        self.output_padding = (0,)
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *self.kernel_size)
        )
        if with_bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)

    def _offset_conv(self, values_per_point: int) -> nn.Conv2d:
        """The ``conv_offset`` of the *Pack variants: ``values_per_point`` (2 offsets, plus a
        mask logit for v2) per kernel point and deformable group, same geometry as the DCN."""
        return nn.Conv2d(
            self.in_channels,
            self.deform_groups * values_per_point * self.kernel_size[0] * self.kernel_size[1],
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=True,
        )

    def _deform(self, x: Tensor, offset: Tensor, mask: Tensor | None = None) -> Tensor:
        # Under amp the offset decides the dtype, as in mmcv. mmcv also pads inputs smaller
        # than the kernel (a CUDA kernel limitation); neither implementation needs it.
        x = x.type_as(offset)
        return deform_conv2d(
            x,
            offset,
            self.weight.type_as(x),
            None if self.bias is None else self.bias.type_as(x),
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=None if mask is None else mask.type_as(x),
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, deform_groups={self.deform_groups}, "
            f"bias={self.bias is not None}"
        )


class DeformConv2d(_DeformConvBase):
    """DCN v1 taking the offset as a second input; ``offset`` has ``2 * G * kh * kw`` channels."""

    @deprecated_api_warning({"deformable_groups": "deform_groups"}, cls_name="DeformConv2d")
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = False,
        im2col_step: int = 32,
    ) -> None:
        if bias:
            raise ValueError(f"bias={bias} is not supported in DeformConv2d (as in mmcv).")
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
            deform_groups, with_bias=False,
        )
        self.im2col_step = im2col_step  # kept for config compatibility; torchvision ignores it
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")

    def forward(self, x: Tensor, offset: Tensor) -> Tensor:
        return self._deform(x, offset)


class DeformConv2dPack(DeformConv2d):
    """DCN v1 predicting its offsets with ``conv_offset`` (zero-initialised); mmcv's 'DCN'."""

    _version = 2

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv_offset = self._offset_conv(2)
        self.init_offset()

    def init_offset(self) -> None:
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return self._deform(x, self.conv_offset(x))


class ModulatedDeformConv2d(_DeformConvBase):
    """DCN v2 taking offset and mask as inputs; has a bias by default, like mmcv's."""

    @deprecated_api_warning(
        {"deformable_groups": "deform_groups"}, cls_name="ModulatedDeformConv2d"
    )
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool | str = True,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
            deform_groups, with_bias=bool(bias),
        )
        self.init_weights()

    def init_weights(self) -> None:
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        return self._deform(x, offset, mask)


class ModulatedDeformConv2dPack(ModulatedDeformConv2d):
    """DCN v2 predicting offsets and mask with ``conv_offset`` (zero-init); mmcv's 'DCNv2'."""

    _version = 2

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv_offset = self._offset_conv(3)
        self.init_weights()

    def init_weights(self) -> None:
        super().init_weights()
        if hasattr(self, "conv_offset"):
            nn.init.zeros_(self.conv_offset.weight)
            nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        o1, o2, mask_logits = torch.chunk(self.conv_offset(x), 3, dim=1)
        return self._deform(x, torch.cat((o1, o2), dim=1), F.sigmoid(mask_logits))
