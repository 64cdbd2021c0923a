"""evaluation."""

from .cityscapes_official import CityscapesOfficialMetric  # noqa: F401
from .flops_hook import SparseFlopsHook  # noqa: F401  (registers it)
from .sparse_coco_metric import SparseCocoMetric  # noqa: F401
from .sparse_metric import (  # noqa: F401
    NonFiniteOutputError,
    SparseCityscapesMetric,
    SparseIoUMetric,
)
