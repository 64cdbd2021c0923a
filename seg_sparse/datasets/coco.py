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
runs the check and also refuses

* images listed in the file but missing on disk;
* a file whose categories do not match the config's classes (:func:`check_categories`): mmdet
  maps category ids to labels by name, in the file's order, so 5 synthetic classes under the
  80-class COCO configs silently become other classes;
* a training file without annotations, or without any image left to train on.

A validation file without annotations is refused by ``SparseCocoMetric`` (COCO mAP would be -1)
unless the metric only writes detections (``format_only``).
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
            "category_names": [c["name"] for c in data["categories"]],
            "annotations": len(annotations), "skipped_boxes": degenerate}


def check_categories(path: str, file_names: Sequence[str], classes: Sequence[str],
                     subset: bool = False) -> None:
    """Raise :class:`BadAnnotationError` unless label i of the dataset will be ``classes[i]``.

    mmdet's ``CocoDataset`` keeps the file's categories whose name is one of ``classes`` and
    numbers them in the file's order. So every class must be a category of the file, once, in
    the same order; a category the classes do not name is refused too, unless ``subset`` (the
    config chose its classes on purpose: their annotations are then left out)."""
    classes = list(classes)
    missing = [c for c in classes if c not in file_names]
    twice = sorted({n for n in file_names if file_names.count(n) > 1 and n in classes})
    extra = [] if subset else [n for n in file_names if n not in classes]
    kept = [n for n in file_names if n in classes]
    problems = []
    if missing:
        problems.append(f"classes of the config missing from the file: {_listed(missing)}")
    if extra:
        problems.append(f"categories of the file that are not classes of the config: "
                        f"{_listed(extra)}")
    if twice:
        problems.append(f"category names used more than once: {_listed(twice)}")
    if not problems and kept != classes:
        problems.append(f"the file lists the classes in another order: {_listed(kept)}")
    if problems:
        raise BadAnnotationError(
            f"annotation file '{path}' does not match the config's {len(classes)} classes "
            f"({len(file_names)} categories in the file): " + "; ".join(problems) + ". mmdet "
            "maps categories to labels by name in the file's order, so the boxes would be "
            "mislabelled. Use a config made for this data (synthetic scenes from `seg-sparse "
            "gen-coco`: configs/cpu/*synthcoco*.py), or set the dataset's metainfo classes "
            "and the heads' num_classes to the file's categories.")


def _listed(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{f', ... ({len(names)} in all)' if len(names) > limit else ''}]"


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset`` (same arguments) that checks the annotation file
    (:func:`check_coco_annotations`), that its categories are the config's classes
    (:func:`check_categories`), that a training file has something to train on, and that every
    listed image exists on disk, and builds its pipeline's ``LoadImageFromFile`` as
    :class:`CheckedLoadImageFromFile`."""

    def __init__(self, pipeline: Sequence[Any] = (), metainfo: Mapping | None = None,
                 **kwargs: Any) -> None:
        # classes given by the config (not mmdet's 80 defaults) may be a chosen subset
        self._classes_chosen = bool(metainfo) and "classes" in metainfo
        super().__init__(pipeline=[], metainfo=metainfo, **kwargs)
        self.pipeline = Compose(with_checked_loading(
            pipeline, {"LoadImageFromFile": (CheckedLoadImageFromFile, {})}))

    def load_data_list(self) -> list[dict]:
        if self.data_root and not osp.isdir(self.data_root):
            raise FileNotFoundError(
                f"COCO data_root '{self.data_root}' does not exist. Expected "
                "<root>/annotations/instances_{train,val}2017.json and <root>/{train,val}2017/ "
                f"(docs/detection.md, Data); {self._data_hint()}, or pass `--data-root DIR`.")
        local = self.backend_args is None
        if local:
            summary = check_coco_annotations(self.ann_file,
                                             require_annotations=not self.test_mode)
            check_categories(self.ann_file, summary["category_names"],
                             self.metainfo["classes"], subset=self._classes_chosen)
            if not self.test_mode and not summary["annotations"]:
                raise BadAnnotationError(
                    f"annotation file '{self.ann_file}' has no annotations: there is nothing "
                    "to train on (a training file needs boxes; image-info files are for "
                    "testing)")
        data_list = super().load_data_list()
        if local:
            missing = [d["img_path"] for d in data_list if not osp.isfile(d["img_path"])]
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} image(s) listed in '{self.ann_file}' are missing on disk, "
                    f"e.g. '{missing[0]}' (image folder '{self.data_prefix.get('img')}')")
        return data_list

    def filter_data(self) -> list[dict]:
        kept = super().filter_data()
        if not self.test_mode and not kept:
            raise BadAnnotationError(
                f"annotation file '{self.ann_file}': no image is left to train on after "
                f"mmdet's filter (filter_cfg={self.filter_cfg}: images without a box of the "
                "config's classes, or smaller than min_size, are dropped)")
        return kept

    def _data_hint(self) -> str:
        from seg_sparse.data.synthetic_coco import CLASSES

        if tuple(self.metainfo["classes"]) == CLASSES:
            return f"generate synthetic scenes with `seg-sparse gen-coco {self.data_root}`"
        return (f"this config's {len(self.metainfo['classes'])} classes need COCO 2017 (or a "
                "dataset with the same categories); synthetic scenes (`seg-sparse gen-coco`) "
                "have 5 classes and go with configs/cpu/*synthcoco*.py")
