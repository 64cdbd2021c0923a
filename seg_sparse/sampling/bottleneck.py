"""Sparse ResNet bottleneck: the dense block plus two sampling masks and interpolation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..ops import DeformConv2d
from .execution import Executor
from .interpolation import GaussianInterpolation
from .layer import SamplingLayer, resolve_options
from .options import SamplingOptions
from .predictors import MaskPredictor, paired_mask_logits
from .temperature import GumbelTemperature


@dataclass
class SamplingOutput:
    """What one forward of a :class:`SparseBottleneck` sampled.

    ``prob1`` / ``prob2``: loss probabilities (B, 1, H, W) of the conv1 / conv2 masks (keep
    their graph, for the sparsity loss). ``mask1`` / ``mask2``: the masks actually applied --
    soft in training; in eval binary for the Gumbel samplers and the soft gate g for ``relu``
    (see ``MaskSampler.computed`` for the positions computed); grid-prior positions forced to 1.
    For the ``dense`` sampler all four are ones (expanded views, no memory) at the right shapes.
    """

    prob1: torch.Tensor
    prob2: torch.Tensor
    mask1: torch.Tensor
    mask2: torch.Tensor


class SparseBottleneck(SamplingLayer):
    """ResNet bottleneck ('pytorch' style: stride on conv2) with stochastic feature sampling.

    Forward (docs/design.md, "One block")::

        x -> conv1 -> bn1 -> relu -> interp(., m1) -> conv2 (DCN offsets from x) -> bn2 -> relu
          -> interp(., m2) -> conv3 -> bn3 -> (+ downsample(x) or x) -> relu

    m1 (conv1's resolution) and m2 (the block's output resolution) come from mask predictors on
    the block input x (plain 3x3 convs, not dilated, also in dilated blocks). Interpolation is
    applied before conv3, on the ``width`` channels: a quarter of the cost of interpolating
    conv3's output. In eval, where bn3 uses running statistics and conv3 + bn3 is affine, this
    equals running conv3 + bn3 only where m2 is non-zero and interpolating its 4x wider output
    (the reading the FLOPs count uses) wherever the interpolation weights are normalized, i.e.
    where G * m2 >= eps (see :class:`GaussianInterpolation`); elsewhere bn3's offset is kept
    whole here but would be shrunk with the features there. In training the two differ
    everywhere: bn3 normalises with the batch statistics of the interpolated tensor.

    Sub-module names match mmseg's ``ResNetV1c`` ``Bottleneck`` (conv1/bn1/conv2/bn2/conv3/bn3/
    downsample), so its checkpoints load; the new ones are ``conv2_offset`` (DCN only),
    ``mask1``/``mask2``, ``interp1``/``interp2`` and ``temperature`` (none of them for the
    ``dense`` sampler, whose forward is exactly the plain bottleneck's).

    ``groups`` / ``width`` give the ResNeXt variant (conv1/conv2/conv3 at ``width`` channels,
    conv2 grouped; default width = planes, groups = 1: ResNet).

    Sampling options (sampler, grid prior, interpolation window, temperature schedule,
    execution) come from ``options`` (a :class:`SamplingOptions`, default its defaults) with
    any of its fields given as keywords applied on top.

    After every forward ``last_sampling`` holds a :class:`SamplingOutput`.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        with_dcn: bool = False,
        groups: int = 1,
        width: int | None = None,
        options: SamplingOptions | None = None,
        **option_overrides: Any,
    ) -> None:
        options = resolve_options(options, option_overrides)
        super().__init__(options)
        width = planes if width is None else width
        self.inplanes = inplanes
        self.planes = planes
        self.stride = stride
        self.dilation = dilation
        self.with_dcn = with_dcn
        self.groups = groups
        self.last_sampling: SamplingOutput | None = None

        self.conv1 = nn.Conv2d(inplanes, width, kernel_size=1, bias=False)
        self.bn1 = norm_layer(width)
        conv2_type = DeformConv2d if with_dcn else nn.Conv2d
        self.conv2 = conv2_type(
            width, width, kernel_size=3, stride=stride, padding=dilation, dilation=dilation,
            groups=groups, bias=False,
        )
        self.bn2 = norm_layer(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

        if with_dcn:
            self.conv2_offset = nn.Conv2d(
                inplanes, 2 * 3 * 3, kernel_size=3, stride=stride, padding=dilation,
                dilation=dilation,
            )
        if not self.sampler.is_dense:
            self.mask1 = MaskPredictor(inplanes)
            self.mask2 = MaskPredictor(inplanes, stride=stride)
            self.interp1 = GaussianInterpolation(window=options.interp_window)
            self.interp2 = GaussianInterpolation(window=options.interp_window)
            self.temperature = GumbelTemperature(t0=options.t0, t_final=options.t_final,
                                                 max_iters=options.max_iters)
        self.reset_sampling_parameters()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, with_dcn={self.with_dcn}, groups={self.groups}"

    def reset_sampling_parameters(self) -> None:
        """Initialise the new layers: offsets 0, mask predictors 0 / bias 3, bandwidth 3.

        Call after any framework init that re-initialises every ``nn.Conv2d`` (e.g. mmengine's
        Kaiming init_cfg), otherwise the block does not start as the dense network.
        """
        if self.with_dcn:
            nn.init.zeros_(self.conv2_offset.weight)
            nn.init.zeros_(self.conv2_offset.bias)
        if not self.is_dense:
            for module in (self.mask1, self.mask2, self.interp1, self.interp2):
                module.reset_parameters()

    def __getstate__(self) -> dict:
        # the last forward's tensors carry an autograd graph that cannot be deep-copied or
        # pickled (copy.deepcopy(model) after a training step would fail); copies start empty
        state = super().__getstate__()
        state["last_sampling"] = None
        return state

    def _sample(
        self, which: int, logits: torch.Tensor, size: torch.Size
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(prob, mask) from mask ``which``'s logits (0: mask1, 1: mask2); the mask has the
        grid prior applied (or is ``mask_override[which]``)."""
        if logits.shape[-2:] != size:
            raise RuntimeError(f"mask of shape {tuple(logits.shape)} does not match the "
                               f"features' spatial size {tuple(size)}")
        result = self.draw(which, logits)
        return result.prob, result.mask

    def _record_dense(self, x: torch.Tensor, size2: torch.Size) -> None:
        b, h1, w1 = x.shape[0], *x.shape[-2:]
        ones1 = x.new_ones(()).expand(b, 1, h1, w1)
        ones2 = x.new_ones(()).expand(b, 1, *size2)
        self.last_sampling = SamplingOutput(ones1, ones2, ones1, ones2)

    def forward_executed(self, x: torch.Tensor, executor: Executor) -> torch.Tensor:
        """Inference computing only at the sampled positions, by ``executor`` (see
        :mod:`seg_sparse.sampling.execution`).

        The mask logits and random draws are the masked forward's (both use
        :func:`paired_mask_logits`), so are the masks; the output equals the masked forward's
        up to float rounding (BN folded, other summation order).
        """
        x = x.contiguous(memory_format=torch.channels_last)
        size2 = torch.Size(((x.shape[-2] - 1) // self.stride + 1,
                            (x.shape[-1] - 1) // self.stride + 1))
        if self.is_dense:
            self._record_dense(x, size2)
            mask1 = mask2 = None
        else:
            logits1, logits2 = paired_mask_logits((self.mask1, self.mask2), x)
            prob1, mask1 = self._sample(0, logits1, x.shape[-2:])
            prob2, mask2 = self._sample(1, logits2, size2)
            self.last_sampling = SamplingOutput(prob1, prob2, mask1, mask2)
        return executor.run_block(self, x, mask1, mask2)

    def _conv2(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.with_dcn:
            return self.conv2(out, self.conv2_offset(x))
        return self.conv2(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        executor = self.executor(x)
        if executor is not None:
            return self.forward_executed(x, executor)
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        if not self.is_dense:
            logits1, logits2 = paired_mask_logits((self.mask1, self.mask2), x)
            prob1, mask1 = self._sample(0, logits1, out.shape[-2:])
            out = self.interp1(out, mask1)

        out = self._conv2(out, x)
        out = self.bn2(out)
        out = self.relu(out)
        if not self.is_dense:
            prob2, mask2 = self._sample(1, logits2, out.shape[-2:])
            out = self.interp2(out, mask2)
            self.last_sampling = SamplingOutput(prob1, prob2, mask1, mask2)
        else:
            self._record_dense(x, out.shape[-2:])

        out = self.conv3(out)
        out = self.bn3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)
