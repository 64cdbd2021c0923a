"""The task's numbers: its FLOPs convention, its density metric and its headline accuracy
(segmentation: the whole segmentor, mIoU; detection: the backbone, COCO mAP)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmengine.config import Config
from torch import nn

from seg_sparse.apis.task import TaskError, is_detection
from seg_sparse.flops import FlopsReport, count_flops


def model_flops(cfg: Config, model: nn.Module, shape: tuple[int, int]) -> FlopsReport:
    """Dense GFLOPs profile in the task's convention: the whole segmentor (backbone and head),
    or a detector's backbone only (measured on the meta device: no compute)."""
    if is_detection(cfg):
        from seg_sparse.flops.meta import count_flops_on_meta

        return count_flops_on_meta(getattr(model, "backbone", model), shape)
    return count_flops(model, shape)

def density_metric(cfg: Config) -> Any:
    """The metric the analysis commands evaluate with: ``SparseIoUMetric`` (segmentation) or
    ``SparseCocoMetric`` with the config's val evaluator arguments (detection)."""
    evaluator = cfg.get("val_evaluator") or cfg.get("test_evaluator") or {}
    if isinstance(evaluator, (list, tuple)):
        evaluator = evaluator[0] if evaluator else {}
    if not is_detection(cfg):
        from seg_sparse.evaluation import SparseIoUMetric

        return SparseIoUMetric(ignore_index=int(evaluator.get("ignore_index", 255)))
    from seg_sparse.evaluation import SparseCocoMetric

    kwargs = {k: v for k, v in evaluator.items() if k not in ("type", "format_only")}
    if not kwargs.get("ann_file"):
        raise TaskError("the config's val_evaluator has no ann_file to evaluate detections on")
    return SparseCocoMetric(**kwargs)

def accuracy(cfg: Config, metrics: Mapping[str, Any]) -> tuple[str, float]:
    """(name, value in %) of the task's headline accuracy in a metric's (unprefixed) results:
    ``mIoU``, or ``mAP`` = COCO bbox mAP x 100."""
    if is_detection(cfg):
        return "mAP", 100.0 * float(metrics["bbox_mAP"])
    return "mIoU", float(metrics["mIoU"])
