"""Model registrations: sparse backbones, the sparse FCN head, the segmentor (mmseg) and the
detector (mmdet) that train their sampling masks."""

# ruff: noqa: E402  (the registrations below must run before this package's imports)
from seg_sparse.registration import register_all_modules

register_all_modules()  # compat first, then every registration, always in that order

from .backbones import SparseResNetV1c, SparseResNeXt
from .decode_heads import SparseFCNHead
from .detection import SparseDetResNet, SparseDetResNeXt, SparseFasterRCNN
from .segmentors import SparseEncoderDecoder
from .tta import SparseDetTTAModel, SparseSegTTAModel

__all__ = [
    "SparseDetResNeXt",
    "SparseDetResNet",
    "SparseDetTTAModel",
    "SparseEncoderDecoder",
    "SparseFCNHead",
    "SparseFasterRCNN",
    "SparseResNeXt",
    "SparseResNetV1c",
    "SparseSegTTAModel",
]
