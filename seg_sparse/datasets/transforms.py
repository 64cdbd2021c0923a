"""Loading transforms that name the offending file instead of training on garbage.

mmcv's image loader only asserts on undecodable files and mmseg's annotation loader crashes
with ``'NoneType' object has no attribute 'squeeze'``; neither checks label values, so a label
map in labelIds instead of trainIds trains silently on wrong targets.
"""

from __future__ import annotations

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS

from seg_sparse.errors import UserInputError


class BadDataError(UserInputError, ValueError):
    """A data file that must not be trained or evaluated on; the message names it."""


class DataDecodeError(BadDataError):
    """An image or label file exists but cannot be decoded."""


class InvalidLabelError(BadDataError):
    """A label map holds values that are neither a class index nor the ignore index."""


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` raising :class:`DataDecodeError` with the file name."""

    def transform(self, results: dict) -> dict | None:
        try:
            out = super().transform(results)
        except (AssertionError, OSError, ValueError) as err:
            raise DataDecodeError(f"cannot decode image '{results['img_path']}': {err}") from err
        if out is not None and out.get("img") is None:
            raise DataDecodeError(f"cannot decode image '{results['img_path']}'")
        return out


@TRANSFORMS.register_module()
class CheckedLoadAnnotations(LoadAnnotations):
    """``LoadAnnotations`` that checks the label map decodes and holds only valid ids.

    Args:
        num_classes: labels must be in ``[0, num_classes)`` or equal ``ignore_index``.
        ignore_index: the "void" label (255 for Cityscapes trainIds).
    """

    def __init__(self, num_classes: int = 19, ignore_index: int = 255, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def _load_seg_map(self, results: dict) -> None:
        path = results["seg_map_path"]
        try:
            super()._load_seg_map(results)
        except (AttributeError, OSError, ValueError) as err:
            raise DataDecodeError(f"cannot decode label map '{path}': {err}") from err
        seg = results["gt_seg_map"]
        values = np.unique(seg)
        bad = values[(values >= self.num_classes) & (values != self.ignore_index)]
        if bad.size:
            raise InvalidLabelError(
                f"label map '{path}' has values {bad.tolist()[:10]} outside "
                f"{{0..{self.num_classes - 1}, {self.ignore_index}}}; Cityscapes labels must be "
                "trainIds (*_labelTrainIds.png, made by data_tools/cityscapes.py), not labelIds."
            )

    def __repr__(self) -> str:
        return (
            f"{super().__repr__()[:-1]}, num_classes={self.num_classes}, "
            f"ignore_index={self.ignore_index})"
        )
