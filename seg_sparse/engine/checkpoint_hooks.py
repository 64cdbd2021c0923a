"""Hook that makes mmengine checkpoints safe to load, verifiable and exactly resumable.

* Plain data only: mmengine stores the message hub's ``HistoryBuffer`` objects (numpy arrays
  and bound methods) in every checkpoint, and numpy scalars in the runtime info (the logger's
  ``eta``); torch's weights-only unpickler refuses them. The hook swaps each buffer for a plain
  dict of lists and each numpy scalar for a Python number on save, and rebuilds the buffers on
  load, before ``Runner.resume`` hands the message hub state over.
* Integrity: the last edit before writing records a digest of the checkpoint's tensors and
  data (``meta['seg_sparse_digest']``), which the loader verifies.
* Exact resume: every random state of the run is saved (:mod:`.random_state`) and restored
  right before the first batch a resumed run trains on; validation during training leaves
  the training random states as they were, so a run does not depend on when it validated.
* A fresh run whose backbone freezes layers or BN statistics without pretrained weights is
  warned about loudly (:mod:`.pretrained_check`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer, print_log

from seg_sparse.compat.checkpoint import record_checkpoint_digest

from .pretrained_check import warn_if_frozen_without_pretrained
from .random_state import (
    RestoreBeforeFetch,
    capture_random_states,
    restore_random_states,
    restore_sampler_seed,
)
from .registry import register_hook

RANDOM_STATES_KEY = "random_states"

PLAIN_BUFFER_TYPE = "HistoryBuffer"


def history_buffer_to_plain(buffer: HistoryBuffer) -> dict[str, Any]:
    log_history, count_history = buffer.data
    return {
        "type": PLAIN_BUFFER_TYPE,
        "log_history": log_history.tolist(),
        "count_history": count_history.tolist(),
        "max_length": int(buffer.max_length),
    }


def plain_to_history_buffer(plain: dict[str, Any]) -> HistoryBuffer:
    return HistoryBuffer(plain["log_history"], plain["count_history"], plain["max_length"])


def is_plain_history_buffer(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == PLAIN_BUFFER_TYPE


def message_hub_to_plain(state: dict[str, Any]) -> None:
    """In place: replace the ``HistoryBuffer`` values of a message hub state dict and the numpy
    scalars of its runtime info by plain Python data."""
    scalars = state.get("log_scalars", {})
    for key, value in scalars.items():
        if isinstance(value, HistoryBuffer):
            scalars[key] = history_buffer_to_plain(value)
    numpy_scalars_to_python(state.get("runtime_info", {}))


def numpy_scalars_to_python(value: Any) -> Any:
    """Recursively turn numpy scalars (e.g. the logger's ``eta``) into Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = numpy_scalars_to_python(item)
        return value
    if isinstance(value, list):
        return [numpy_scalars_to_python(item) for item in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(numpy_scalars_to_python(item) for item in value)
    return value


def message_hub_from_plain(state: dict[str, Any]) -> None:
    """In place: inverse of :func:`message_hub_to_plain` (other values are left alone)."""
    scalars = state.get("log_scalars", {})
    for key, value in scalars.items():
        if is_plain_history_buffer(value):
            scalars[key] = plain_to_history_buffer(value)


@register_hook
class SafeCheckpointHook(Hook):
    """Writes checkpoints without pickled objects, with a digest and the run's random states;
    restores them on load and resume.

    Add ``custom_hooks=[dict(type='SafeCheckpointHook')]`` to a config (the toolkit's base
    runtime does). Lowest priority: it edits the checkpoint after every other hook has.
    """

    priority = "LOWEST"

    def __init__(self) -> None:
        self._resume: tuple[int, dict[str, Any]] | None = None
        self._before_val: dict[str, Any] | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if isinstance(checkpoint.get("message_hub"), dict):
            message_hub_to_plain(checkpoint["message_hub"])
        if isinstance(checkpoint.get("meta"), dict):
            numpy_scalars_to_python(checkpoint["meta"])
        checkpoint[RANDOM_STATES_KEY] = capture_random_states(runner.model,
                                                              _train_sampler(runner))
        record_checkpoint_digest(checkpoint)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if isinstance(checkpoint.get("message_hub"), dict):
            message_hub_from_plain(checkpoint["message_hub"])
        states = checkpoint.get(RANDOM_STATES_KEY)
        meta = checkpoint.get("meta") or {}
        self._resume = (meta.get("iter"), states) if isinstance(states, dict) else None

    def before_train(self, runner) -> None:
        """On resume (the loaded checkpoint's iteration is the runner's), give the sampler its
        seed back now and the other states right before the next trained batch is loaded."""
        pending, self._resume = self._resume, None
        if runner.iter == 0:  # a fresh run: frozen layers need trained weights to start from
            warn_if_frozen_without_pretrained(runner)
        if pending is None or runner.iter == 0 or pending[0] != runner.iter:
            return  # a fresh run, or weights loaded with load_from: keep this run's randomness
        states = pending[1]
        sampler = _train_sampler(runner)
        if sampler is not None and restore_sampler_seed(states, sampler):
            print_log(f"SafeCheckpointHook: data sampler seed restored to {sampler.seed}",
                      logger="current")
        loop = runner.train_loop
        if hasattr(loop, "dataloader_iterator"):  # iteration-based: mmengine skips ahead first
            loop.dataloader_iterator = RestoreBeforeFetch(
                loop, runner.iter, lambda: self._restore(runner, states))
        else:
            self._restore(runner, states)

    @staticmethod
    def _restore(runner, states: dict[str, Any]) -> None:
        problem = restore_random_states(states, runner.model)
        if problem:
            print_log(f"SafeCheckpointHook: {problem}", logger="current", level=logging.WARNING)

    def before_val(self, runner) -> None:
        self._before_val = capture_random_states(runner.model)

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_random_states(self._before_val, runner.model)
            self._before_val = None


def _train_sampler(runner) -> Any:
    """The training dataloader's sampler, without building a loop that does not exist yet."""
    from mmengine.runner import BaseLoop

    loop = getattr(runner, "_train_loop", None)
    dataloader = getattr(loop, "dataloader", None) if isinstance(loop, BaseLoop) else None
    return getattr(dataloader, "sampler", None)
