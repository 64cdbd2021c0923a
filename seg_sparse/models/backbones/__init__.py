"""Sparse backbones registered in mmseg's MODELS."""

from .sparse_resnet import SparseBlockFactory, SparseResNetV1c, SparseResNeXt

__all__ = ["SparseBlockFactory", "SparseResNetV1c", "SparseResNeXt"]
