"""Data tools: synthetic street scenes (Cityscapes and COCO layouts), the Cityscapes converter.

The public functions are imported lazily so that ``python -m seg_sparse.data.synthetic`` (or
``.cityscapes_convert``) does not import its own module twice.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "convert_cityscapes": "cityscapes_convert",
    "generate_synthetic_cityscapes": "synthetic",
    "generate_synthetic_coco": "synthetic_coco",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
