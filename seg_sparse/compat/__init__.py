"""Compatibility layer, imported before anything touches mmseg.

* ``mmcv_ops_fallback``: a pure-torch ``mmcv.ops`` (point_sample, torchvision-backed DCN/DCNv2)
  installed only when mmcv's compiled ``mmcv._ext`` is missing;
* ``checkpoint``: weights-only checkpoint loading with a numpy data-type allowlist and an
  explicit opt-in for trusted legacy files;
* ``sync_bn``: 'SyncBN' that also trains multi-process on CPU (gloo).
"""

from .checkpoint import (
    TRUST_CLI_FLAG,
    TRUST_ENV_VAR,
    UnsafeCheckpointError,
    allow_legacy_checkpoints,
    install_checkpoint_loader,
    legacy_checkpoints_allowed,
    load_checkpoint_safely,
    register_safe_globals,
)
from .mmcv_ops_fallback import compiled_mmcv_available, install, is_fallback_installed
from .sync_bn import CPUCompatibleDistributedDataParallel, CPUSyncBatchNorm, register_sync_bn

install()
register_safe_globals()
install_checkpoint_loader()
register_sync_bn()

__all__ = [
    "CPUCompatibleDistributedDataParallel",
    "CPUSyncBatchNorm",
    "TRUST_CLI_FLAG",
    "TRUST_ENV_VAR",
    "UnsafeCheckpointError",
    "allow_legacy_checkpoints",
    "compiled_mmcv_available",
    "is_fallback_installed",
    "legacy_checkpoints_allowed",
    "load_checkpoint_safely",
]
