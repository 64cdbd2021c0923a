"""Model registrations: sparse backbones, the sparse FCN head, the segmentor (mmseg) and the
detector (mmdet) that train their sampling masks."""

from .backbones import SparseResNetV1c, SparseResNeXt
from .decode_heads import SparseFCNHead
from .detection import SparseDetResNet, SparseDetResNeXt, SparseFasterRCNN
from .segmentors import SparseEncoderDecoder

__all__ = [
    "SparseDetResNeXt",
    "SparseDetResNet",
    "SparseEncoderDecoder",
    "SparseFCNHead",
    "SparseFasterRCNN",
    "SparseResNeXt",
    "SparseResNetV1c",
]
