"""Model registrations: sparse backbones, the segmentor (mmseg) and the detector (mmdet) that
train their sampling masks."""

from .backbones import SparseResNetV1c, SparseResNeXt
from .detection import SparseDetResNet, SparseDetResNeXt, SparseFasterRCNN
from .segmentors import SparseEncoderDecoder

__all__ = [
    "SparseDetResNeXt",
    "SparseDetResNet",
    "SparseEncoderDecoder",
    "SparseFasterRCNN",
    "SparseResNeXt",
    "SparseResNetV1c",
]
