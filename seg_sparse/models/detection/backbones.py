"""The paper's detection backbones: mmdet's ResNet / ResNeXt built from :class:`SparseBottleneck`.

7x7 stem, stages with strides 1, 2, 2, 2 and no dilation, DCN v1 in conv3-conv5 (offsets
predicted from the block input), grid prior 11 and a 7x7 interpolation window. Everything but
the residual block is mmdet's own ResNet (stem, stage layout, ``frozen_stages``, ``norm_eval``,
init_cfg); the block comes from the same :class:`SparseBlockFactory` / mixin as the
segmentation backbones, so parameter names equal mmdet's ResNet (``layer1.0.conv1.weight``,
``layer1.0.bn1.running_mean``, ...): ImageNet and mmdet ResNet checkpoints load with only the
sampling layers and the DCN offset convs (``conv2_offset``) missing.
"""

from __future__ import annotations

from typing import Any

from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS

from seg_sparse.models.backbones.sparse_resnet import SparseBlockFactory, _SparseResNetMixin

#: The paper's detection DCN: v1, one offset group, in conv3-conv5.
PAPER_DCN = dict(type="DCN", deform_groups=1, fallback_on_stride=False)
PAPER_STAGE_WITH_DCN = (False, True, True, True)


@MODELS.register_module()
class SparseDetResNet(_SparseResNetMixin, ResNet):
    """mmdet's ResNet (7x7 stem, default depth 101) whose bottlenecks sample sparsely.

    Args:
        sampler, grid_interval, interp_window, t0, t_final, max_iters, execution: the
            :class:`~seg_sparse.sampling.SamplingOptions` of every block, as for
            ``SparseResNetV1c`` (``SparseTemperatureHook`` re-targets ``max_iters`` to the
            training loop's).
        **kwargs: everything mmdet's ``ResNet`` accepts; ``dcn`` / ``stage_with_dcn`` default
            to the paper's DCN v1 in conv3-conv5 (pass ``dcn=None`` for none).
    """

    def __init__(self, depth: int = 101, **kwargs: Any) -> None:
        kwargs.setdefault("dcn", dict(PAPER_DCN))
        kwargs.setdefault("stage_with_dcn", PAPER_STAGE_WITH_DCN)
        kwargs["depth"] = depth
        super().__init__(**self._setup_sparse(kwargs))


@MODELS.register_module()
class SparseDetResNeXt(SparseDetResNet):
    """mmdet's ResNeXt (default 101, 32x4d) with sparse bottlenecks: conv2 grouped, width
    ``floor(planes * base_width / base_channels) * groups``.

    Args:
        groups, base_width: as mmdet's ResNeXt.
        **kwargs: as :class:`SparseDetResNet`.
    """

    def __init__(self, groups: int = 32, base_width: int = 4, **kwargs: Any) -> None:
        self.groups = groups
        self.base_width = base_width
        super().__init__(**kwargs)

    def _block_factory(self) -> SparseBlockFactory:
        return SparseBlockFactory(self.sampling_options, groups=self.groups,
                                  base_width=self.base_width, base_channels=self.base_channels)
