"""Hand the model to metrics that report GFLOPs (mmengine metrics never see the model)."""

from __future__ import annotations

from typing import Any

from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper

from seg_sparse.engine.registry import register_hook


@register_hook
class SparseFlopsHook(Hook):
    """Before every validation and test, give the unwrapped model to each metric of the loop's
    evaluator that has ``set_flops_model`` (:class:`SparseIoUMetric`,
    :class:`SparseCityscapesMetric`); under test-time augmentation the model it wraps. Works
    under ``seg-sparse test`` and mmseg's ``tools/test.py`` alike: list it in the config's
    ``custom_hooks``.
    """

    priority = "LOW"

    @staticmethod
    def hand_over(runner: Any, loop: Any) -> int:
        """Give ``runner``'s model to the metrics of ``loop``; returns how many took it."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if isinstance(model, BaseTTAModel):  # --tta: the metrics count the wrapped model
            model = model.module
        taken = 0
        for metric in getattr(loop.evaluator, "metrics", []):
            if hasattr(metric, "set_flops_model"):
                metric.set_flops_model(model)
                taken += 1
        return taken

    def before_val(self, runner: Any) -> None:
        self.hand_over(runner, runner.val_loop)

    def before_test(self, runner: Any) -> None:
        self.hand_over(runner, runner.test_loop)
