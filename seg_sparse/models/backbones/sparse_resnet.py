"""Sparse ResNetV1c / ResNeXt backbones: mmseg's ResNets built from :class:`SparseBottleneck`.

The stem, the stage layout (strides, dilations, contract_dilation, multi_grid), the downsample
branches, ``norm_eval`` / ``frozen_stages`` and the init_cfg handling are mmseg's own; only the
residual block is swapped, through :class:`SparseBlockFactory`, which turns mmseg's block keyword
arguments (norm_cfg, dcn, style, ...) into :class:`SparseBottleneck` arguments. Parameter names
of the dense parts equal mmseg's (``layer1.0.conv1.weight``, ``layer1.0.bn1.running_mean``, ...),
so ResNetV1c / ImageNet checkpoints load; only the sampling layers (``mask1``, ``mask2``,
``interp1``, ``interp2``, ``temperature``) and the DCN offset convs (``conv2_offset``) are new.
"""

from __future__ import annotations

import math
from typing import Any

from mmcv.cnn import build_norm_layer
from mmseg.models.backbones import ResNet, ResNetV1c
from mmseg.registry import MODELS
from torch import nn

from seg_sparse.sampling import SamplingOptions, SparseBottleneck, sparse_blocks

#: The only DCN flavour of the paper: DCN v1, one offset group (18 offset channels).
_SUPPORTED_DCN = ("DCN", "DCNv1", "DeformConv2dPack", "DeformConv")


def _dcn_for_block(dcn: dict | None, stride: int) -> bool:
    """Whether a block with mmseg's ``dcn`` config gets a deformable conv2."""
    if dcn is None:
        return False
    if not isinstance(dcn, dict):
        raise TypeError(f"backbone 'dcn' must be a dict or None, got {dcn!r}")
    unknown = set(dcn) - {"type", "deform_groups", "fallback_on_stride"}
    if dcn.get("type") not in _SUPPORTED_DCN or dcn.get("deform_groups", 1) != 1 or unknown:
        raise ValueError(
            f"sparse backbones support only dcn=dict(type='DCN', deform_groups=1"
            f"[, fallback_on_stride=...]) (DCN v1, offsets predicted from the block input), "
            f"got dcn={dcn!r}"
        )
    return not (dcn.get("fallback_on_stride", False) and stride > 1)


class SparseBlockFactory:
    """Callable that mmseg's ``ResLayer`` uses as its ``block`` class.

    ``ResLayer`` reads ``block.expansion`` and calls ``block(inplanes=..., planes=..., stride=...,
    dilation=..., downsample=..., style=..., with_cp=..., conv_cfg=..., norm_cfg=..., dcn=...,
    plugins=..., init_cfg=...)``; this maps those to :class:`SparseBottleneck` and refuses the
    options the sparse block does not implement instead of silently ignoring them.
    """

    expansion = SparseBottleneck.expansion

    def __init__(self, options: SamplingOptions, groups: int = 1, base_width: int = 4,
                 base_channels: int = 64) -> None:
        self.options = options
        self.groups = groups
        self.base_width = base_width
        self.base_channels = base_channels

    def __call__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        style: str = "pytorch",
        with_cp: bool = False,
        conv_cfg: dict | None = None,
        norm_cfg: dict | None = None,
        dcn: dict | None = None,
        plugins: list | None = None,
        init_cfg: Any = None,  # mmseg's zero-init of norm3: done by the backbone's init_weights
    ) -> SparseBottleneck:
        unsupported = {
            "style": (style, "pytorch"), "with_cp": (with_cp, False),
            "conv_cfg": (conv_cfg, None), "plugins": (plugins, None),
        }
        for key, (value, supported) in unsupported.items():
            if value != supported:
                raise ValueError(f"sparse backbones need {key}={supported!r}, got {key}={value!r}")
        norm_cfg = dict(type="BN", requires_grad=True) if norm_cfg is None else norm_cfg

        def norm_layer(channels: int) -> nn.Module:
            return build_norm_layer(norm_cfg, channels)[1]

        kwargs = dict(
            stride=stride, dilation=dilation, downsample=downsample, norm_layer=norm_layer,
            with_dcn=_dcn_for_block(dcn, stride), options=self.options,
        )
        if self.groups > 1:  # mmseg ResNeXt: floor(planes * base_width / base_channels) * groups
            kwargs.update(groups=self.groups, width=math.floor(
                planes * (self.base_width / self.base_channels)) * self.groups)
        return SparseBottleneck(inplanes, planes, **kwargs)


def uses_pretrained(init_cfg: Any) -> bool:
    """Whether an init_cfg loads pretrained weights (which sampling-layer resets must keep)."""
    cfgs = init_cfg if isinstance(init_cfg, list | tuple) else [init_cfg]
    return any(isinstance(c, dict) and c.get("type") == "Pretrained" for c in cfgs)


class _SparseResNetMixin:
    """Swaps mmseg's Bottleneck for :class:`SparseBottleneck`; put before an mmseg ResNet."""

    sampling_options: SamplingOptions
    _default_init: bool

    def _setup_sparse(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Take the sampling options out of ``kwargs`` (the rest, returned, go to the ResNet);
        called before the ResNet constructor runs."""
        self.sampling_options, kwargs = SamplingOptions.split(kwargs)
        depth = kwargs.get("depth")
        if depth not in (50, 101, 152):
            raise ValueError(f"sparse ResNets need a Bottleneck depth (50, 101, 152), got "
                             f"depth={depth!r}")
        # mmseg zero-initialises bn3 only under its default (Kaiming) init.
        self._default_init = kwargs.get("init_cfg") is None and kwargs.get("pretrained") is None
        return kwargs

    def _block_factory(self) -> SparseBlockFactory:
        return SparseBlockFactory(self.sampling_options)

    def make_res_layer(self, **kwargs: Any) -> nn.Module:
        """mmseg's ResLayer with the sparse block in place of ``kwargs['block']``."""
        kwargs["block"] = self._block_factory()
        return super().make_res_layer(**kwargs)  # type: ignore[misc]

    def train(self, mode: bool = True) -> nn.Module:
        """The ResNet's ``train`` (frozen stages, ``norm_eval``), returning the module as
        ``nn.Module.train`` does (mmseg's and mmdet's return None, which breaks
        ``model.eval()`` chains)."""
        super().train(mode)  # type: ignore[misc]
        return self  # type: ignore[return-value]

    def init_weights(self) -> None:
        """mmseg's init, then the sampling layers' own init (Kaiming re-initialises them).

        With a Pretrained init_cfg the loaded weights are kept as loaded (new layers keep their
        constructor init when the checkpoint lacks them). Otherwise mask predictors go back to
        weight 0 / bias 3 and DCN offsets to 0, and under mmseg's default init
        ``zero_init_residual`` zeroes bn3 as mmseg does for its own Bottleneck.
        """
        first_call = not self._is_init  # type: ignore[attr-defined]
        super().init_weights()  # type: ignore[misc]
        if not first_call or uses_pretrained(self.init_cfg):  # type: ignore[attr-defined]
            return
        zero_bn3 = self._default_init and self.zero_init_residual  # type: ignore[attr-defined]
        for _, block in sparse_blocks(self):  # type: ignore[arg-type]
            block.reset_sampling_parameters()
            if zero_bn3:
                nn.init.zeros_(block.bn3.weight)
                nn.init.zeros_(block.bn3.bias)


@MODELS.register_module()
class SparseResNetV1c(_SparseResNetMixin, ResNetV1c):
    """mmseg's ResNetV1c (deep stem) whose bottlenecks sample features sparsely.

    Args:
        sampler, grid_interval, interp_window, t0, t_final, max_iters, execution: the
            :class:`~seg_sparse.sampling.SamplingOptions` of every block (``sampler='dense'``:
            the dense / uniform baseline, DCN offsets still from the block input);
            ``SparseTemperatureHook`` re-targets ``max_iters`` to the Runner's.
        **kwargs: everything mmseg's ``ResNetV1c`` accepts (depth, strides, dilations,
            contract_dilation, multi_grid, stem_channels, base_channels, norm_cfg, norm_eval,
            frozen_stages, dcn, stage_with_dcn, zero_init_residual, init_cfg / pretrained).
            Depth 50, 101 or 152.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**self._setup_sparse(kwargs))


@MODELS.register_module()
class SparseResNeXt(_SparseResNetMixin, ResNet):
    """mmseg's ResNeXt (``groups`` x ``base_width``d, e.g. 32x4d) with sparse bottlenecks.

    Args:
        groups, base_width: as mmseg's ResNeXt (conv2 width
            ``floor(planes * base_width / base_channels) * groups``).
        sampler, grid_interval, interp_window, t0, t_final, max_iters, execution: the
            :class:`~seg_sparse.sampling.SamplingOptions` of every block.
        **kwargs: everything mmseg's ``ResNet`` accepts (``deep_stem=True`` for a V1c stem).
    """

    def __init__(self, groups: int = 32, base_width: int = 4, **kwargs: Any) -> None:
        self.groups = groups
        self.base_width = base_width
        super().__init__(**self._setup_sparse(kwargs))

    def _block_factory(self) -> SparseBlockFactory:
        return SparseBlockFactory(self.sampling_options, groups=self.groups,
                                  base_width=self.base_width, base_channels=self.base_channels)
