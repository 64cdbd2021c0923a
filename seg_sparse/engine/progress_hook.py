"""A progress bar for testing that shows whatever the config's ``log_level``.

mmengine reports test progress only through the logger (``Iter(test) [ 10/500]`` lines at INFO,
every ``default_hooks.logger.interval`` iterations), so a config with ``log_level='WARNING'``
tests for minutes without a sign of life. :class:`TestProgressHook` draws mmengine's own
``ProgressBar`` on stderr on the main process; ``seg-sparse test`` adds it.
"""

from __future__ import annotations

import sys
from typing import Any

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar

from .registry import register_hook


@register_hook
class TestProgressHook(Hook):
    """One bar step per test batch, on the main process (its share of the batches)."""

    priority = "VERY_LOW"

    def __init__(self) -> None:
        self._bar: ProgressBar | None = None

    def before_test(self, runner: Any) -> None:
        if is_main_process():
            self._bar = ProgressBar(len(runner.test_loop.dataloader), file=sys.stderr)

    def after_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                        outputs: Any = None) -> None:
        if self._bar is not None:
            self._bar.update()

    def after_test(self, runner: Any) -> None:
        if self._bar is not None:
            self._bar.file.write("\n")
            self._bar.file.flush()
            self._bar = None
