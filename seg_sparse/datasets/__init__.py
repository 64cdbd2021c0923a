"""Dataset and transform registrations that refuse bad input loudly."""

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
