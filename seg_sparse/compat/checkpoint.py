"""Checkpoint loading that keeps torch's ``weights_only=True`` protection.

torch >= 2.6 unpickles checkpoints with ``weights_only=True``, which refuses any global that is
not allowlisted. mmengine checkpoints trip over it: their message hub pickles ``HistoryBuffer``
objects (numpy arrays plus bound methods, i.e. ``builtins.getattr``). Allowlisting ``getattr``
would let a crafted file call arbitrary attributes, so instead:

* the checkpoints the toolkit writes hold plain data only (``SafeCheckpointHook`` in
  ``seg_sparse.engine.checkpoint_hooks`` converts the message hub on save and back on load);
* numpy's data types (arrays, scalars, dtypes, never object arrays) are allowlisted, because
  metadata such as dataset palettes may carry them;
* every local checkpoint mmengine loads (``Runner.load_checkpoint``, ``resume``, ``load_from``,
  mmseg's ``tools/test.py``) goes through :func:`load_checkpoint_safely`;
* older checkpoints from a trusted source can be loaded by an explicit, warned opt-in
  (:func:`allow_legacy_checkpoints`, env ``SEG_SPARSE_TRUST_CHECKPOINTS=1`` or the CLI's
  ``--trust-checkpoint``) that applies to those files only; ``weights_only`` is never turned
  off globally.
"""

from __future__ import annotations

import os
import pickle
import warnings
from typing import Any

import numpy as np
import torch

TRUST_ENV_VAR = "SEG_SPARSE_TRUST_CHECKPOINTS"
TRUST_CLI_FLAG = "--trust-checkpoint"
_UNSAFE_DTYPE_CLASSES = ("ObjectDType",)  # object arrays would unpickle arbitrary objects
_legacy_allowed = False


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs globals outside the weights-only allowlist."""


def numpy_safe_globals() -> list[Any]:
    """numpy's data-only reconstruction globals: arrays, scalars and (non-object) dtypes."""
    from numpy._core.multiarray import _reconstruct, scalar

    dtype_classes = [
        getattr(np.dtypes, name)
        for name in dir(np.dtypes)
        if name.endswith("DType") and name not in _UNSAFE_DTYPE_CLASSES
    ]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


def register_safe_globals() -> None:
    """Allowlist numpy data types for ``weights_only`` loading (``_codecs.encode``, which
    numpy arrays also need, is allowlisted by torch itself)."""
    torch.serialization.add_safe_globals(numpy_safe_globals())


def allow_legacy_checkpoints(enabled: bool = True) -> None:
    """Opt in (for this process) to loading checkpoints that need non-allowlisted globals.

    Only for files from a trusted source: unpickling them can run arbitrary code. Affects
    :func:`load_checkpoint_safely` only, which warns for every file it loads this way.
    """
    global _legacy_allowed
    _legacy_allowed = enabled
    if enabled:
        warnings.warn(
            "seg_sparse: legacy checkpoints are trusted for this process; a checkpoint that "
            "fails weights-only loading will be fully unpickled, which can execute code.",
            stacklevel=2,
        )


def legacy_checkpoints_allowed() -> bool:
    return _legacy_allowed or os.environ.get(TRUST_ENV_VAR, "") == "1"


def _unsafe_globals(path: str) -> list[str]:
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # legacy (non-zip) format or unreadable: the load error says enough
        return []


def load_checkpoint_safely(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``; trusted legacy files only after opt-in.

    Raises ``FileNotFoundError`` for a missing file, ``RuntimeError`` naming the file for one
    torch cannot read, and :class:`UnsafeCheckpointError`, naming the file, the offending
    globals and the ways forward, for a file outside the allowlist.
    """
    path = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} can not be found.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError) as err:  # truncated / not a torch file, bad map_location
        raise RuntimeError(f"could not load checkpoint {path}: {err}") from err
    except pickle.UnpicklingError as err:
        unsafe = _unsafe_globals(path)
        if legacy_checkpoints_allowed():
            warnings.warn(
                f"seg_sparse: loading {path} with weights_only=False because legacy checkpoints "
                f"are trusted (globals outside the allowlist: {unsafe or 'unknown'}).",
                stacklevel=2,
            )
            return torch.load(path, map_location=map_location, weights_only=False)
        raise UnsafeCheckpointError(
            f"Refusing to load checkpoint {path}: it needs globals outside the weights-only "
            f"allowlist ({', '.join(unsafe) or 'see the torch error below'}). Checkpoints "
            f"written by seg_sparse (with SafeCheckpointHook) contain plain data only. If this "
            f"file comes from a source you trust (e.g. an older mmengine run), opt in with "
            f"{TRUST_CLI_FLAG}, the environment variable {TRUST_ENV_VAR}=1, or "
            f"seg_sparse.compat.allow_legacy_checkpoints(); unpickling an untrusted file can "
            f"execute arbitrary code.\ntorch said: {_unpickler_reason(err)}"
        ) from err


def _unpickler_reason(err: Exception) -> str:
    """The line of torch's long weights-only message that names the refused global."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reasons = [line for line in lines if "global" in line.lower()]
    return reasons[0] if reasons else (lines[-1] if lines else repr(err))


def _mmengine_local_loader(filename: str, map_location: Any = None) -> Any:
    return load_checkpoint_safely(filename, map_location=map_location)


def install_checkpoint_loader() -> None:
    """Route mmengine's local-file checkpoint loading through :func:`load_checkpoint_safely`."""
    from mmengine.runner import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes="", loader=_mmengine_local_loader, force=True)
