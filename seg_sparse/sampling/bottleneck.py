"""Sparse ResNet bottleneck: the dense block plus two sampling masks and interpolation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..ops import DeformConv2d  # torchvision's module (same state dict), the fast op inside
from .grid import apply_grid_prior, check_grid_interval
from .interpolation import GaussianInterpolation
from .masks import MaskPredictor
from .samplers import MaskSampler, build_sampler
from .temperature import GumbelTemperature


@dataclass
class SamplingOutput:
    """What one forward of a :class:`SparseBottleneck` sampled.

    ``prob1`` / ``prob2``: loss probabilities (B, 1, H, W) of the conv1 / conv2 masks (keep
    their graph, for the sparsity loss). ``mask1`` / ``mask2``: the masks actually applied --
    binary in eval, soft in training, grid-prior positions forced to 1. For the ``dense``
    sampler all four are ones (expanded views, no memory) at the right shapes.
    """

    prob1: torch.Tensor
    prob2: torch.Tensor
    mask1: torch.Tensor
    mask2: torch.Tensor


class SparseBottleneck(nn.Module):
    """ResNet bottleneck ('pytorch' style: stride on conv2) with stochastic feature sampling.

    Forward (DESIGN.md section 1)::

        x -> conv1 -> bn1 -> relu -> interp(., m1) -> conv2 (DCN offsets from x) -> bn2 -> relu
          -> interp(., m2) -> conv3 -> bn3 -> (+ downsample(x) or x) -> relu

    m1 (conv1's resolution) and m2 (the block's output resolution) come from mask predictors on
    the block input x. Interpolation is applied before conv3 on the ``planes`` channels; since
    conv3 is 1x1, bn3 affine and the interpolation weights normalized, this equals running
    conv3 + bn3 at the m2 positions only and interpolating its 4x wider output -- the reading
    the FLOPs count uses -- at a quarter of the interpolation cost.

    Sub-module names match mmseg's ``ResNetV1c`` ``Bottleneck`` (conv1/bn1/conv2/bn2/conv3/bn3/
    downsample), so its checkpoints load; the new ones are ``conv2_offset`` (DCN only),
    ``mask1``/``mask2``, ``interp1``/``interp2`` and ``temperature`` (none of them for the
    ``dense`` sampler, whose forward is exactly the plain bottleneck's).

    ``groups`` / ``width`` give the ResNeXt variant (conv1/conv2/conv3 at ``width`` channels,
    conv2 grouped; default width = planes, groups = 1: ResNet).

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
        sampler: str = "stochastic",
        grid_interval: int | None = 11,
        interp_window: int = 7,
        t0: float = 1.0,
        t_final: float = 0.01,
        max_iters: int = 60000,
        groups: int = 1,
        width: int | None = None,
    ) -> None:
        super().__init__()
        width = planes if width is None else width
        self.inplanes = inplanes
        self.planes = planes
        self.stride = stride
        self.dilation = dilation
        self.with_dcn = with_dcn
        self.groups = groups
        self.sampler: MaskSampler = build_sampler(sampler)
        check_grid_interval(grid_interval)
        self.grid_interval = grid_interval
        self.last_sampling: SamplingOutput | None = None
        self._generator: torch.Generator | None = None

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
            self.mask2 = MaskPredictor(inplanes, stride=stride, dilation=dilation)
            self.interp1 = GaussianInterpolation(window=interp_window)
            self.interp2 = GaussianInterpolation(window=interp_window)
            self.temperature = GumbelTemperature(t0=t0, t_final=t_final, max_iters=max_iters)
        self.reset_sampling_parameters()

    @property
    def is_dense(self) -> bool:
        """True for the ``dense`` sampler: no sampling layers, plain bottleneck forward."""
        return self.sampler.is_dense

    def extra_repr(self) -> str:
        return (f"sampler={self.sampler.name!r}, grid_interval={self.grid_interval}, "
                f"with_dcn={self.with_dcn}, groups={self.groups}")

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
        state = self.__dict__.copy()
        state["last_sampling"] = None
        return state

    def set_generator(self, generator: torch.Generator | None) -> None:
        """Use ``generator`` for the sampling noise (None: torch's global RNG)."""
        self._generator = generator

    def _sample(
        self, predictor: MaskPredictor, x: torch.Tensor, size: torch.Size
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(prob, mask) of one predictor; the mask has the grid prior applied."""
        logits = predictor(x)
        if logits.shape[-2:] != size:
            raise RuntimeError(f"mask of shape {tuple(logits.shape)} does not match the "
                               f"features' spatial size {tuple(size)}")
        result = self.sampler(logits, self.training, self.temperature.value, self._generator)
        return result.prob, apply_grid_prior(result.mask, self.grid_interval)

    def _conv2(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.with_dcn:
            return self.conv2(out, self.conv2_offset(x))
        return self.conv2(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        if not self.is_dense:
            prob1, mask1 = self._sample(self.mask1, x, out.shape[-2:])
            out = self.interp1(out, mask1)

        out = self._conv2(out, x)
        out = self.bn2(out)
        out = self.relu(out)
        if not self.is_dense:
            prob2, mask2 = self._sample(self.mask2, x, out.shape[-2:])
            out = self.interp2(out, mask2)
            self.last_sampling = SamplingOutput(prob1, prob2, mask1, mask2)
        else:
            b, h1, w1, h2, w2 = x.shape[0], *x.shape[-2:], *out.shape[-2:]
            ones1 = x.new_ones(()).expand(b, 1, h1, w1)
            ones2 = x.new_ones(()).expand(b, 1, h2, w2)
            self.last_sampling = SamplingOutput(ones1, ones2, ones1, ones2)

        out = self.conv3(out)
        out = self.bn3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)
