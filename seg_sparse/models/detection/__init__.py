"""Detection adapter: the sparse backbones and Faster R-CNN registered in mmdet's MODELS."""

from .backbones import SparseDetResNet, SparseDetResNeXt
from .detectors import SparseFasterRCNN

__all__ = ["SparseDetResNeXt", "SparseDetResNet", "SparseFasterRCNN"]
