"""Dataset and transform registrations that refuse bad input loudly."""

# ruff: noqa: E402  (the registrations below must run before this package's imports)
from seg_sparse.registration import register_all_modules

register_all_modules()  # compat first, then every registration, always in that order

from .cityscapes import CheckedCityscapesDataset
from .coco import BadAnnotationError, CheckedCocoDataset, check_coco_annotations
from .transforms import CheckedLoadAnnotations, CheckedLoadImageFromFile

__all__ = [
    "BadAnnotationError",
    "CheckedCityscapesDataset",
    "CheckedCocoDataset",
    "CheckedLoadAnnotations",
    "CheckedLoadImageFromFile",
    "check_coco_annotations",
]
