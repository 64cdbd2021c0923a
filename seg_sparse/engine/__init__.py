"""Runner hooks: atomic checkpoint saving, safe / verifiable / exactly resumable checkpoint
content, and the Gumbel temperature schedule. All are registered in mmseg's and mmdet's
``HOOKS`` (:mod:`.registry`)."""

# ruff: noqa: E402  (the registrations below must run before this package's imports)
from seg_sparse.registration import register_all_modules

register_all_modules()  # compat first, then every registration, always in that order

from .atomic_checkpoint import AtomicCheckpointHook, CheckpointSaveError
from .checkpoint_hooks import SafeCheckpointHook
from .temperature_hook import SparseTemperatureHook

__all__ = ["AtomicCheckpointHook", "CheckpointSaveError", "SafeCheckpointHook",
           "SparseTemperatureHook"]
