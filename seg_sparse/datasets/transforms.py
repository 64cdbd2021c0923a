"""Loading transforms that name the offending file instead of training on garbage.

mmcv's image loader only asserts on undecodable files (and lets OpenCV's ``cv2.error`` through
for an empty one), mmseg's annotation loader crashes with ``'NoneType' object has no attribute
'squeeze'``; neither checks label values or that image and label map have the same size, so a
label map in labelIds instead of trainIds trains silently on wrong targets and a size mismatch
crashes later in the metric or batch stacking without naming either file.

Configs name the stock loaders (``LoadImageFromFile``, ``LoadAnnotations``), the names mmseg's
and mmdet's inference APIs look for when they strip label loading and swap the image loader;
the ``Checked*`` datasets build those steps as the checked subclasses below
(:func:`with_checked_loading`), so training, validation and testing keep the checks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
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


class SizeMismatchError(BadDataError):
    """An image and its label map have different sizes."""


def image_size(path: str, what: str = "image") -> tuple[int, int]:
    """(H, W) from the file's header (cheap: nothing is decoded); DataDecodeError naming the
    file when it is empty or not an image."""
    from PIL import Image, UnidentifiedImageError

    if os.path.getsize(path) == 0:
        raise DataDecodeError(f"cannot decode {what} '{path}': the file is empty (0 bytes)")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataDecodeError(f"cannot decode {what} '{path}': {err}") from err
    return height, width


def check_same_size(image_path: str, image_hw: tuple[int, ...], label_path: str,
                    label_hw: tuple[int, ...]) -> None:
    if tuple(image_hw[:2]) != tuple(label_hw[:2]):
        raise SizeMismatchError(
            f"image '{image_path}' is {image_hw[1]}x{image_hw[0]} but its label map "
            f"'{label_path}' is {label_hw[1]}x{label_hw[0]} (W x H); they must match")


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` raising :class:`DataDecodeError` with the file name."""

    def transform(self, results: dict) -> dict | None:
        try:
            out = super().transform(results)
        except (AssertionError, OSError, ValueError, cv2.error) as err:
            reason = "the file is empty (0 bytes)" if _is_empty(results["img_path"]) else err
            raise DataDecodeError(f"cannot decode image '{results['img_path']}': "
                                  f"{reason}") from err
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
        except (AttributeError, OSError, ValueError, cv2.error) as err:
            reason = "the file is empty (0 bytes)" if _is_empty(path) else err
            raise DataDecodeError(f"cannot decode label map '{path}': {reason}") from err
        seg = results["gt_seg_map"]
        if "ori_shape" in results and "img_path" in results:  # the image was loaded before
            check_same_size(results["img_path"], results["ori_shape"], path, seg.shape)
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


def with_checked_loading(pipeline: Sequence[Any],
                         checked: Mapping[str, tuple[type, dict]]) -> list[Any]:
    """``pipeline`` (transform configs) with each step named in ``checked`` (by its registry
    name, with or without a scope prefix such as ``mmseg.``, or by its class) built as the
    checked class given there, with the same arguments plus the given defaults.

    ``checked``: stock name -> (checked class, default arguments), e.g.
    ``{"LoadAnnotations": (CheckedLoadAnnotations, {"num_classes": 19})}``. Steps given as
    built transforms, or of other types, are kept as they are; the ``transforms`` of a wrapper
    step (``TestTimeAug``: lists of alternatives) are mapped the same way.
    """
    out = []
    for step in pipeline:
        if isinstance(step, Mapping):
            match = next((v for k, v in checked.items() if _names(step.get("type"), k, v[0])),
                         None)
            if match is not None:
                cls, defaults = match
                step = {**defaults, **step, "type": cls}
            elif isinstance(step.get("transforms"), (list, tuple)):
                step = {**step, "transforms": [
                    with_checked_loading(inner, checked) if isinstance(inner, (list, tuple))
                    else with_checked_loading([inner], checked)[0]
                    for inner in step["transforms"]]}
        out.append(step)
    return out


def _names(kind: Any, stock_name: str, checked: type) -> bool:
    """A config's ``type`` names the stock transform that ``checked`` subclasses."""
    if isinstance(kind, str):
        return kind.rpartition(".")[2] == stock_name
    return kind is checked.__base__


def _is_empty(path: str) -> bool:
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False
