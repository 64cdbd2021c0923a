"""Compatibility layer, imported before anything touches mmseg.

* ``mmcv_ops_fallback``: a pure-torch ``mmcv.ops`` (point_sample, torchvision-backed DCN/DCNv2)
  installed only when mmcv's compiled ``mmcv._ext`` is missing;
* ``checkpoint``: weights-only checkpoint loading with a numpy data-type allowlist, an explicit
  opt-in for trusted legacy files and an integrity check; ``checkpoint_schemes`` routes every
  source mmengine loads from (files, URLs, model zoos, object stores) through it;
* ``sync_bn``: 'SyncBN' that also trains multi-process on CPU (gloo).

What importing it changes process-wide is listed in docs/design.md ("What `import seg_sparse`
changes").
"""

from . import checkpoint_schemes
from .checkpoint import (
    TRUST_CLI_FLAG,
    TRUST_ENV_VAR,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    allow_legacy_checkpoints,
    checkpoint_digest,
    legacy_checkpoints_allowed,
    legacy_checkpoints_trusted,
    load_checkpoint_bytes,
    load_checkpoint_safely,
    register_safe_globals,
)
from .mmcv_ops_fallback import compiled_mmcv_available, install, is_fallback_installed
from .sync_bn import CPUCompatibleDistributedDataParallel, CPUSyncBatchNorm, register_sync_bn

install()
register_safe_globals()
checkpoint_schemes.install()
register_sync_bn()

__all__ = [
    "CPUCompatibleDistributedDataParallel",
    "CPUSyncBatchNorm",
    "CorruptCheckpointError",
    "TRUST_CLI_FLAG",
    "TRUST_ENV_VAR",
    "UnsafeCheckpointError",
    "allow_legacy_checkpoints",
    "checkpoint_digest",
    "compiled_mmcv_available",
    "is_fallback_installed",
    "legacy_checkpoints_allowed",
    "legacy_checkpoints_trusted",
    "load_checkpoint_bytes",
    "load_checkpoint_safely",
]
