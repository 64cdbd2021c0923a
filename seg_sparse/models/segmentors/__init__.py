"""Segmentors registered in mmseg's MODELS."""

from .sparse_encoder_decoder import (
    DENSITIES_KEY,
    HEAD_DENSITIES_KEY,
    INPUT_SHAPE_KEY,
    SparseEncoderDecoder,
)

__all__ = ["DENSITIES_KEY", "HEAD_DENSITIES_KEY", "INPUT_SHAPE_KEY", "SparseEncoderDecoder"]
