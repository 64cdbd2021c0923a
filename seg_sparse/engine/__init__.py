"""Runner hooks: atomic checkpoint saving, safe / verifiable / exactly resumable checkpoint
content, the Gumbel temperature schedule, and densities / masks for mmengine's visualizer. All
are registered in mmseg's and mmdet's ``HOOKS`` (:mod:`.registry`)."""

from .atomic_checkpoint import AtomicCheckpointHook, CheckpointSaveError
from .checkpoint_hooks import SafeCheckpointHook
from .temperature_hook import SparseTemperatureHook
from .visualization_hook import SparseVisualizationHook

__all__ = ["AtomicCheckpointHook", "CheckpointSaveError", "SafeCheckpointHook",
           "SparseTemperatureHook", "SparseVisualizationHook"]
