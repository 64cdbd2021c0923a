"""Runner hooks: atomic checkpoint saving, safe / verifiable / exactly resumable checkpoint
content, and the Gumbel temperature schedule. All are registered in mmseg's and mmdet's
``HOOKS`` (:mod:`.registry`)."""

from .atomic_checkpoint import AtomicCheckpointHook, CheckpointSaveError
from .checkpoint_hooks import SafeCheckpointHook
from .temperature_hook import SparseTemperatureHook

__all__ = ["AtomicCheckpointHook", "CheckpointSaveError", "SafeCheckpointHook",
           "SparseTemperatureHook"]
