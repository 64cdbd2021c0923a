"""FLOPs (multiply-accumulates) of segmentors, dense and as executed with sampling densities.

``count_flops(model, (H, W), densities=None, head_densities=None) -> FlopsReport``; see
:mod:`.report` for the convention (docs/design.md, "FLOPs convention").
"""

from .counter import count_flops, is_bottleneck, is_sparse_block
from .flops_report import BlockFlops, FlopsReport, HeadLayerFlops, normalize_densities

__all__ = [
    "BlockFlops",
    "FlopsReport",
    "HeadLayerFlops",
    "count_flops",
    "is_bottleneck",
    "is_sparse_block",
    "normalize_densities",
]
