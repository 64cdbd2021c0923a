"""Runner hooks: atomic checkpoint saving, safe / verifiable / exactly resumable checkpoint
content, and the Gumbel temperature schedule. All are registered in mmseg's and mmdet's
``HOOKS`` (:mod:`.registry`). Also the work dir lock of a training (:mod:`.work_dir_lock`)."""

from .atomic_checkpoint import AtomicCheckpointHook, CheckpointSaveError
from .checkpoint_hooks import SafeCheckpointHook
from .temperature_hook import SparseTemperatureHook
from .work_dir_lock import WorkDirLockedError, acquire_work_dir_lock, release_work_dir_lock

__all__ = ["AtomicCheckpointHook", "CheckpointSaveError", "SafeCheckpointHook",
           "SparseTemperatureHook", "WorkDirLockedError", "acquire_work_dir_lock",
           "release_work_dir_lock"]
