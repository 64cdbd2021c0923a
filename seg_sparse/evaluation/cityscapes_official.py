"""The official Cityscapes pixel-level evaluation with its class-level numbers.

mmseg's ``CityscapesMetric`` runs cityscapesscripts' ``evalPixelLevelSemanticLabeling`` but
returns only the *category* averages. The number comparable to mmseg's mIoU is the class IoU
average (``averageScoreClasses``), so this subclass returns it too and keeps the per-class
scores of the 19 evaluated classes from the last evaluation in
:attr:`CityscapesOfficialMetric.class_scores`.
"""

from __future__ import annotations

import os.path as osp

from mmengine.logging import print_log
from mmseg.evaluation.metrics import CityscapesMetric
from mmseg.evaluation.metrics import citys_metric as _citys
from mmseg.registry import METRICS


@METRICS.register_module()
class CityscapesOfficialMetric(CityscapesMetric):
    """``CityscapesMetric`` returning class and category averages (fractions in [0, 1]).

    Args:
        quiet: silence cityscapesscripts' own printout (confusion matrix, score tables).
        **kwargs: as for mmseg's ``CityscapesMetric`` (``output_dir``, ``keep_results``, ...).
    """

    def __init__(self, quiet: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.quiet = quiet
        self.class_scores: dict[str, float] = {}
        self.class_inst_scores: dict[str, float] = {}

    def compute_metrics(self, results: list) -> dict[str, float]:
        if self.format_only:
            return super().compute_metrics(results)
        cs_eval = _citys.CSEval
        print_log(f"Official Cityscapes evaluation of {len(results)} predictions under "
                  f"{self.output_dir}", logger="current")
        cs_eval.args.evalInstLevelScore = True
        cs_eval.args.predictionPath = osp.abspath(self.output_dir)
        cs_eval.args.evalPixelAccuracy = True
        cs_eval.args.JSONOutput = False
        cs_eval.args.quiet = self.quiet
        pred_list, gt_list = zip(*results)
        scores = cs_eval.evaluateImgLists(list(pred_list), list(gt_list), cs_eval.args)
        evaluated = {label.name for label in _citys.CSLabels.labels if not label.ignoreInEval}
        self.class_scores = {k: v for k, v in scores["classScores"].items() if k in evaluated}
        self.class_inst_scores = {
            k: v for k, v in scores["classInstScores"].items() if k in evaluated}
        return {
            key: float(scores[key])
            for key in ("averageScoreClasses", "averageScoreInstClasses",
                        "averageScoreCategories", "averageScoreInstCategories")
        }
