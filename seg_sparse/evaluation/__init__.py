"""evaluation: metrics that report GFLOPs and densities, the hook that hands them the model,
and the DCN handles of mmengine's FLOP counter (:mod:`seg_sparse.flops.mmengine_handles`)."""

# ruff: noqa: E402  (the registrations below must run before this package's imports)
from seg_sparse.registration import register_all_modules

register_all_modules()  # compat first, then every registration, always in that order

from seg_sparse.flops.mmengine_handles import register_mmengine_handles

from .cityscapes_official import CityscapesOfficialMetric  # noqa: F401
from .flops_hook import SparseFlopsHook  # noqa: F401  (registers it)
from .sparse_coco_metric import SparseCocoMetric  # noqa: F401
from .sparse_metric import SparseCityscapesMetric, SparseIoUMetric  # noqa: F401

register_mmengine_handles()
