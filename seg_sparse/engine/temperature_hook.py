"""Drive the Gumbel temperature schedule from the Runner's iteration counter.

The Runner's ``iter`` is restored on resume, so deriving the temperature from it (instead of
counting steps inside the model) continues the schedule exactly where it stopped.
"""

from __future__ import annotations

from typing import Any

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch import nn

from seg_sparse.sampling import GumbelTemperature, set_temperature_iter

from .registry import register_hook


def retarget_temperatures(model: nn.Module, max_iters: int) -> int:
    """Make every Gumbel temperature schedule in ``model`` end at ``max_iters``.

    The backbone's ``max_iters`` comes from the model config and may disagree with the training
    loop's (e.g. after ``--cfg-options train_cfg.max_iters=...``); the loop's count is the one
    at which the temperature must reach T_final. Returns the number of schedules changed.
    """
    changed = 0
    for module in model.modules():
        if isinstance(module, GumbelTemperature) and module.max_iters != max_iters:
            module.reschedule(max_iters)
            changed += 1
    return changed


@register_hook
class SparseTemperatureHook(Hook):
    """Set the temperature to the schedule's value at ``runner.iter`` around every train iter.

    ``before_train`` re-targets the schedule to ``runner.max_iters``; ``before_train_iter``
    sets T(runner.iter) for the forward of that iteration; ``after_train_iter`` sets
    T(runner.iter + 1), so checkpoints saved after an iteration hold the temperature of the next
    one and the model ends training at exactly T_final.
    """

    priority = "NORMAL"

    @staticmethod
    def _model(runner: Any) -> nn.Module:
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner: Any) -> None:
        changed = retarget_temperatures(self._model(runner), runner.max_iters)
        if changed:
            print_log(
                f"SparseTemperatureHook: {changed} temperature schedule(s) re-targeted to end "
                f"at the training loop's max_iters={runner.max_iters}",
                logger="current",
            )
        set_temperature_iter(self._model(runner), runner.iter)

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        set_temperature_iter(self._model(runner), runner.iter)

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        set_temperature_iter(self._model(runner), runner.iter + 1)
