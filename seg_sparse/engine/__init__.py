"""Runner hooks: atomic checkpoint saving, safe / verifiable / exactly resumable checkpoint
content, the Gumbel temperature schedule, a test progress bar, and densities / masks for
mmengine's visualizer. All are registered in mmseg's and mmdet's ``HOOKS`` (:mod:`.registry`)."""

# ruff: noqa: E402  (the registrations below must run before this package's imports)
from seg_sparse.registration import register_all_modules

register_all_modules()  # compat first, then every registration, always in that order

from .atomic_checkpoint import AtomicCheckpointHook, CheckpointSaveError
from .checkpoint_hooks import SafeCheckpointHook
from .progress_hook import TestProgressHook
from .temperature_hook import SparseTemperatureHook
from .visualization_hook import SparseVisualizationHook

__all__ = ["AtomicCheckpointHook", "CheckpointSaveError", "SafeCheckpointHook",
           "SparseTemperatureHook", "SparseVisualizationHook", "TestProgressHook"]
