"""Dataset and transform registrations that refuse bad input loudly."""

from .cityscapes import CheckedCityscapesDataset
from .transforms import CheckedLoadAnnotations, CheckedLoadImageFromFile

__all__ = ["CheckedCityscapesDataset", "CheckedLoadAnnotations", "CheckedLoadImageFromFile"]
