"""Segmentation or detection: the task of a config, and what follows from the config alone.

A config's task is its ``default_scope``: ``'mmseg'`` (segmentation: mIoU, the whole segmentor
counted) or ``'mmdet'`` (detection: COCO mAP, the backbone counted at the paper's test size).
The commands ask this module instead of branching on mmseg / mmdet themselves; what needs a
model or a metric is in :mod:`seg_sparse.analysis.task_metrics`.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Iterable, Mapping

from mmengine.config import Config

SEGMENTATION = "segmentation"
DETECTION = "detection"
SCOPES = {"mmseg": SEGMENTATION, "mmdet": DETECTION}
#: Sides of a detection test size are floored to multiples of this (the paper's convention).
SIZE_DIVISOR = 32


class TaskError(ValueError):
    """A config whose task cannot be told or does not support the requested operation."""


def config_task(cfg: Config | Mapping) -> str:
    """``'segmentation'`` or ``'detection'``, from the config's ``default_scope``."""
    scope = cfg.get("default_scope") or "mmseg"
    if scope not in SCOPES:
        raise TaskError(f"config default_scope {scope!r} is neither 'mmseg' (segmentation) nor "
                        "'mmdet' (detection)")
    return SCOPES[scope]

def is_detection(cfg: Config | Mapping) -> bool:
    return config_task(cfg) == DETECTION

def point_annotation_files(cfg: Config, root: str, loaders: Iterable[str]) -> None:
    """For detection, re-point the COCO metrics' ``ann_file`` of ``loaders`` at ``root`` (the
    metric's is an absolute path next to the dataset's relative one); no-op for segmentation."""
    if not is_detection(cfg):
        return
    for loader in loaders:
        if cfg.get(loader) is None:
            continue
        ann_file = cfg[loader].dataset.get("ann_file")
        if not ann_file or osp.isabs(ann_file):
            continue
        evaluators = cfg.get(loader.replace("_dataloader", "_evaluator"))
        for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
            if isinstance(evaluator, Mapping) and "ann_file" in evaluator:
                evaluator["ann_file"] = osp.join(root, ann_file)

def test_resize_scale(cfg: Config) -> tuple[int, int] | None:
    """(W, H) of the first Resize of the val (else test) pipeline, if it has one."""
    loader = cfg.get("val_dataloader") or cfg.get("test_dataloader")
    pipeline = (loader or {}).get("dataset", {}).get("pipeline") or cfg.get("test_pipeline") or []
    for step in pipeline:
        scale = step.get("scale") if step.get("type") == "Resize" else None
        if isinstance(scale, (tuple, list)) and len(scale) == 2:
            return int(scale[0]), int(scale[1])
    return None

def detection_test_shape(cfg: Config) -> tuple[int, int]:
    """(H, W) at which the paper reports detection GFLOPs: the test Resize's short and long
    side, each floored to a multiple of 32 (short side 1000 -> 992x1664; 800 -> 800x1312;
    600 -> 576x992; 500 -> 480x832)."""
    scale = test_resize_scale(cfg)
    if scale is None:
        raise TaskError("cannot derive the test size from the config's val pipeline (no "
                        "Resize with a (W, H) scale): pass --shape H W")
    short, long = min(scale), max(scale)
    if short < SIZE_DIVISOR:
        raise TaskError(f"the test Resize scale {scale} is smaller than {SIZE_DIVISOR} px")
    return short // SIZE_DIVISOR * SIZE_DIVISOR, long // SIZE_DIVISOR * SIZE_DIVISOR
