"""COCO detection accuracy with backbone GFLOPs and per-block sampling densities.

:class:`SparseCocoMetric` is mmdet's ``CocoMetric`` (pycocotools' COCOeval: ``bbox_mAP``,
``bbox_mAP_50``, ``bbox_mAP_75``, ``bbox_mAP_s/m/l``) plus, as the segmentation metric reports
them (:class:`~seg_sparse.evaluation.sparse_metric.SamplingMetricMixin`: the same density
gathering across ranks and the same FLOPs counter):

* ``gflops_backbone_dense`` and ``gflops_backbone_sparse`` (as executed with the measured
  densities): the paper's detection figure is the backbone's, at the padded network input of
  each image (``batch_input_shape``, e.g. 800x1216 for a 800x1199 image and size divisor 32);
  the FPN and the heads are not counted;
* ``density_mean`` and ``sampling_densities`` (block -> [d1, d2]).

Like every mmdet metric the keys get the ``coco/`` prefix (``coco/bbox_mAP``,
``coco/gflops_backbone_sparse``). ``SparseFlopsHook`` hands over the model; like every seg-sparse
hook it is registered in mmdet's HOOKS too (:mod:`seg_sparse.engine.registry`).
"""

from __future__ import annotations

from typing import Any

from mmdet.evaluation.metrics import CocoMetric
from mmdet.registry import METRICS
from torch import nn

from seg_sparse.datasets.coco import BadAnnotationError, check_coco_annotations
from seg_sparse.flops import FlopsReport
from seg_sparse.flops.meta import count_flops_on_meta

from .sparse_metric import SamplingMetricMixin

#: Keys of the segmentation metric that have no meaning for a backbone-only count.
_HEAD_KEYS = ("gflops_head", "gflops_total_dense", "gflops_total_sparse")


@METRICS.register_module()
class SparseCocoMetric(SamplingMetricMixin, CocoMetric):
    """mmdet's ``CocoMetric`` (same arguments) plus backbone GFLOPs and per-block densities.

    mAP is computed over the images that were evaluated (all of the annotation file's images in
    a full test; the first N when an analysis command evaluates N images). An annotation file
    without annotations is refused when the metric scores (every COCO figure would be -1);
    with ``format_only`` it only writes the detections and needs none.
    """

    accuracy_keys = ("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75")
    output_fields = ("pred_instances",)
    backbone_only = True

    def __init__(self, ann_file: str | None = None, **kwargs: Any) -> None:
        scoring = not kwargs.get("format_only")
        if ann_file is not None:
            summary = check_coco_annotations(ann_file, require_annotations=scoring)
            if scoring and not summary["annotations"]:
                raise BadAnnotationError(
                    f"annotation file '{ann_file}' has no annotations: COCO mAP would be -1 "
                    "for every figure. Evaluate on a file with ground-truth boxes, or only "
                    "write the detections with test_evaluator.format_only=True "
                    "test_evaluator.outfile_prefix=PREFIX (e.g. for COCO test-dev)")
        super().__init__(ann_file=ann_file, **kwargs)

    def set_flops_model(self, model: nn.Module | None) -> None:
        """The detector (or its backbone) whose backbone GFLOPs to report."""
        super().set_flops_model(getattr(model, "backbone", model))

    def flops_profile(self, shape: tuple[int, int]) -> FlopsReport:
        shape = (int(shape[0]), int(shape[1]))
        if shape not in self._profiles and self._flops_model is not None:
            self._profiles[shape] = count_flops_on_meta(self._flops_model, shape)
        return super().flops_profile(shape)

    def compute_metrics(self, results: list) -> dict:
        self.img_ids = sorted({gt["img_id"] for gt, _ in results})
        metrics = super().compute_metrics(results)
        for key in _HEAD_KEYS:
            metrics.pop(key, None)
        return metrics
