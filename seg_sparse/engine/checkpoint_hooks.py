"""Hook that keeps mmengine checkpoints loadable with ``torch.load(weights_only=True)``.

mmengine stores the message hub's ``HistoryBuffer`` objects (numpy arrays and bound methods) in
every checkpoint, and numpy scalars in the runtime info (the logger's ``eta``); torch's
weights-only unpickler refuses them. The hook swaps each buffer for a plain dict of lists and each
numpy scalar for a Python number on save, and rebuilds the buffers on load, before
``Runner.resume`` hands the message hub state over, so resuming restores the logs as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS

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


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Writes checkpoints without pickled objects and restores them on load.

    Add ``custom_hooks=[dict(type='SafeCheckpointHook')]`` to a config (the toolkit's base
    runtime does). Low priority so it converts after other hooks have edited the checkpoint.
    """

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if isinstance(checkpoint.get("message_hub"), dict):
            message_hub_to_plain(checkpoint["message_hub"])
        if isinstance(checkpoint.get("meta"), dict):
            numpy_scalars_to_python(checkpoint["meta"])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if isinstance(checkpoint.get("message_hub"), dict):
            message_hub_from_plain(checkpoint["message_hub"])
