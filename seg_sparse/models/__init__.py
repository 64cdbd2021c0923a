"""mmseg registrations: sparse backbones and the segmentor that trains their sampling masks."""

from .backbones import SparseResNetV1c, SparseResNeXt
from .segmentors import SparseEncoderDecoder

__all__ = ["SparseEncoderDecoder", "SparseResNetV1c", "SparseResNeXt"]
