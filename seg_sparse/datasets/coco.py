"""COCO-format annotation checks and a COCO dataset that fails clearly on bad input.

pycocotools and mmdet's ``CocoDataset`` fail on a malformed ``instances_*.json`` with a bare
``KeyError: 'bbox'`` deep inside their index, silently skip annotations of unknown categories,
and meet a missing image only when the data loader reaches it mid-training.
:func:`check_coco_annotations` reads the file once up front and raises
:class:`BadAnnotationError` naming the file, the entry (list position and id) and the problem:

* not JSON, or the top level lacks ``images`` / ``categories`` (/ ``annotations``);
* an image, category or annotation without a required key, or with a wrongly typed value;
* duplicate image, category or annotation ids;
* an annotation whose ``image_id`` is not an image of the file, or whose ``category_id`` is not
  one of its categories;
* a ``bbox`` that is not four finite numbers.

Boxes of non-positive width or height are *skipped with a warning* (counted, first ids named):
mmdet skips them too, and real annotation files contain a few. :class:`CheckedCocoDataset`
runs the check and also refuses images listed in the file but missing on disk.
"""

from __future__ import annotations

import json
import logging
import math
import os.path as osp
from collections.abc import Mapping, Sequence
from typing import Any

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS, TRANSFORMS
from mmengine.dataset import Compose
from mmengine.logging import print_log

from .transforms import BadDataError, CheckedLoadImageFromFile, with_checked_loading

# configs written before the checked loader was swapped in by the dataset name it in mmdet's
# scope
TRANSFORMS.register_module(module=CheckedLoadImageFromFile)

IMAGE_KEYS = {"id": int, "file_name": str, "height": int, "width": int}
CATEGORY_KEYS = {"id": int, "name": str}
ANNOTATION_KEYS = {"id": int, "image_id": int, "category_id": int, "bbox": list,
                   "area": (int, float)}
#: How many offending ids a warning lists.
LISTED = 5


class BadAnnotationError(BadDataError):
    """A COCO annotation file that cannot be trained or evaluated on; the message names the
    file and the entry."""


def _type_name(expected: Any) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join("number" if t is float else t.__name__ for t in types)


def _check_entry(path: str, section: str, index: int, entry: Any,
                 keys: Mapping[str, Any]) -> None:
    where = f"{section}[{index}]"
    if not isinstance(entry, Mapping):
        raise BadAnnotationError(f"annotation file '{path}': {where} is a "
                                 f"{type(entry).__name__}, not an object")
    if "id" in entry:
        where += f" (id {entry['id']!r})"
    for key, expected in keys.items():
        if key not in entry:
            raise BadAnnotationError(f"annotation file '{path}': {where} has no '{key}' key")
        value = entry[key]
        if isinstance(value, bool) or not isinstance(value, expected):
            raise BadAnnotationError(f"annotation file '{path}': {where} has '{key}' = "
                                     f"{value!r}, expected {_type_name(expected)}")


def _unique_ids(path: str, section: str, entries: list) -> set[int]:
    ids: set[int] = set()
    for entry in entries:
        if entry["id"] in ids:
            raise BadAnnotationError(f"annotation file '{path}': {section} id {entry['id']} "
                                     "appears more than once")
        ids.add(entry["id"])
    return ids


def _load(path: str) -> dict:
    if not osp.isfile(path):
        raise FileNotFoundError(f"annotation file '{path}' does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadAnnotationError(f"annotation file '{path}' is not valid JSON: {err}") from None
    if not isinstance(data, Mapping):
        raise BadAnnotationError(f"annotation file '{path}' holds a {type(data).__name__}, "
                                 "not a COCO object with 'images', 'annotations', 'categories'")
    return data


def check_coco_annotations(path: str, require_annotations: bool = True) -> dict[str, Any]:
    """Validate a COCO ``instances_*.json``; returns a summary (counts and skipped box ids).

    ``require_annotations=False`` accepts image-info files without ``annotations`` (test-dev).
    Boxes of non-positive size are reported with a warning (they are skipped in training and
    evaluation); everything else listed in the module docstring raises.
    """
    data = _load(path)
    required = ["images", "categories"] + (["annotations"] if require_annotations else [])
    for key in required:
        if not isinstance(data.get(key), list):
            problem = "no" if key not in data else f"a {type(data[key]).__name__} as"
            raise BadAnnotationError(f"annotation file '{path}' has {problem} '{key}' list "
                                     "(COCO format: images, annotations, categories)")
    for section, keys in (("images", IMAGE_KEYS), ("categories", CATEGORY_KEYS),
                          ("annotations", ANNOTATION_KEYS)):
        for i, entry in enumerate(data.get(section, [])):
            _check_entry(path, section, i, entry, keys)
    image_ids = _unique_ids(path, "image", data["images"])
    category_ids = _unique_ids(path, "category", data["categories"])
    annotations = data.get("annotations", [])
    _unique_ids(path, "annotation", annotations)
    degenerate = []
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}] (id {ann['id']})"
        if ann["image_id"] not in image_ids:
            raise BadAnnotationError(f"annotation file '{path}': {where} refers to image_id "
                                     f"{ann['image_id']}, which is not in 'images'")
        if ann["category_id"] not in category_ids:
            raise BadAnnotationError(
                f"annotation file '{path}': {where} has unknown category_id "
                f"{ann['category_id']} (categories: {sorted(category_ids)})")
        box = ann["bbox"]
        if len(box) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                    and math.isfinite(v) for v in box):
            raise BadAnnotationError(f"annotation file '{path}': {where} has bbox {box!r}, "
                                     "expected [x, y, width, height] (four finite numbers)")
        if box[2] <= 0 or box[3] <= 0:
            degenerate.append(ann["id"])
    if degenerate:
        listed = ", ".join(map(str, degenerate[:LISTED]))
        more = f" and {len(degenerate) - LISTED} more" if len(degenerate) > LISTED else ""
        print_log(f"annotation file '{path}': skipping {len(degenerate)} box(es) of "
                  f"non-positive width or height (annotation ids {listed}{more})",
                  logger="current", level=logging.WARNING)
    return {"images": len(image_ids), "categories": len(category_ids),
            "annotations": len(annotations), "skipped_boxes": degenerate}


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset`` (same arguments) that checks the annotation file
    (:func:`check_coco_annotations`) and that every listed image exists on disk, and builds
    its pipeline's ``LoadImageFromFile`` as :class:`CheckedLoadImageFromFile`."""

    def __init__(self, pipeline: Sequence[Any] = (), **kwargs: Any) -> None:
        super().__init__(pipeline=[], **kwargs)
        self.pipeline = Compose(with_checked_loading(
            pipeline, {"LoadImageFromFile": (CheckedLoadImageFromFile, {})}))

    def load_data_list(self) -> list[dict]:
        if self.data_root and not osp.isdir(self.data_root):
            raise FileNotFoundError(
                f"COCO data_root '{self.data_root}' does not exist. Expected "
                "<root>/annotations/instances_{train,val}2017.json and <root>/{train,val}2017/ "
                "(README: Detection); generate synthetic data with `seg-sparse gen-coco "
                f"{self.data_root}` or pass `--data-root DIR`.")
        local = self.backend_args is None
        if local:
            check_coco_annotations(self.ann_file, require_annotations=not self.test_mode)
        data_list = super().load_data_list()
        if local:
            missing = [d["img_path"] for d in data_list if not osp.isfile(d["img_path"])]
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} image(s) listed in '{self.ann_file}' are missing on disk, "
                    f"e.g. '{missing[0]}' (image folder '{self.data_prefix.get('img')}')")
        return data_list
