"""Checkpoint loading that keeps torch's ``weights_only=True`` protection and checks integrity.

torch >= 2.6 unpickles checkpoints with ``weights_only=True``, which refuses any global that is
not allowlisted. mmengine checkpoints trip over it: their message hub pickles ``HistoryBuffer``
objects (numpy arrays plus bound methods, i.e. ``builtins.getattr``). Allowlisting ``getattr``
would let a crafted file call arbitrary attributes, so instead:

* the checkpoints the toolkit writes hold plain data only (``SafeCheckpointHook`` in
  ``seg_sparse.engine.checkpoint_hooks`` converts the message hub on save and back on load);
* numpy's data types (arrays, scalars, dtypes, never object arrays) are allowlisted, because
  metadata such as dataset palettes may carry them;
* every checkpoint mmengine loads, from any source it knows (local files, URLs, model zoos,
  object stores: :mod:`seg_sparse.compat.checkpoint_schemes`), goes through
  :func:`load_checkpoint_safely`;
* older checkpoints from a trusted source can be loaded by an explicit, warned opt-in
  (:func:`allow_legacy_checkpoints`, env ``SEG_SPARSE_TRUST_CHECKPOINTS=1`` or the CLI's
  ``--trust-checkpoint``) that applies to those files only; ``weights_only`` is never turned
  off globally;
* a checkpoint that records a digest of its tensors and plain data (the toolkit's do, see
  :func:`checkpoint_digest`) is verified on loading, so a file damaged on disk or in transfer
  is refused instead of evaluating silently wrong weights.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from seg_sparse.errors import UserInputError, one_line
from seg_sparse.fileio import InputFileError

TRUST_ENV_VAR = "SEG_SPARSE_TRUST_CHECKPOINTS"
TRUST_CLI_FLAG = "--trust-checkpoint"
#: Key of ``checkpoint['meta']`` holding the integrity record written by SafeCheckpointHook.
DIGEST_KEY = "seg_sparse_digest"
DIGEST_ALGORITHM = "sha256"
_UNSAFE_DTYPE_CLASSES = ("ObjectDType",)  # object arrays would unpickle arbitrary objects
_PLAIN_TYPES = (str, int, float, bool, bytes, type(None))
_legacy_allowed = False


class UnsafeCheckpointError(UserInputError, pickle.UnpicklingError):
    """A checkpoint needs globals outside the weights-only allowlist."""


class CorruptCheckpointError(UserInputError, RuntimeError):
    """A checkpoint that is empty, truncated, not a torch file, or fails its integrity check."""


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


@contextmanager
def legacy_checkpoints_trusted(trusted: bool = True) -> Iterator[None]:
    """:func:`allow_legacy_checkpoints` for the ``with`` block only (no-op when not
    ``trusted``): the opt-in of one command must not outlive it."""
    if not trusted:
        yield
        return
    previous = _legacy_allowed
    allow_legacy_checkpoints(True)
    try:
        yield
    finally:
        allow_legacy_checkpoints(previous)


def load_checkpoint_safely(path: str | os.PathLike, map_location: Any = "cpu",
                           source: str | None = None) -> Any:
    """``torch.load`` with ``weights_only=True``; trusted legacy files only after opt-in.

    ``source``: what to call the file in messages (e.g. the URL it was downloaded from).
    Raises ``FileNotFoundError`` for a missing file, :class:`CorruptCheckpointError` for an
    empty, truncated or damaged one, and :class:`UnsafeCheckpointError`, naming the file, the
    offending globals and the ways forward, for a file outside the allowlist.
    """
    path = os.path.expanduser(os.fspath(path))
    name = source or path
    if os.path.isdir(path):
        raise InputFileError(f"checkpoint '{name}' is a directory, not a file")
    if not os.path.isfile(path):
        raise InputFileError(f"checkpoint '{name}' does not exist")
    if os.path.getsize(path) == 0:
        raise CorruptCheckpointError(f"checkpoint '{name}' is empty (0 bytes)")
    return _load(lambda: path, name, map_location)


def load_checkpoint_bytes(data: bytes, source: str, map_location: Any = "cpu") -> Any:
    """:func:`load_checkpoint_safely` for a checkpoint held in memory (e.g. read from s3)."""
    if not data:
        raise CorruptCheckpointError(f"checkpoint '{source}' is empty (0 bytes)")
    return _load(lambda: io.BytesIO(data), source, map_location)


def _load(open_source, name: str, map_location: Any) -> Any:
    try:
        checkpoint = torch.load(open_source(), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = _unsafe_globals(open_source())
        if not unsafe and zipfile.is_zipfile(open_source()):
            # a torch zip file whose pickle is readable names its globals: this one is damaged
            raise _unreadable(name, err) from err
        if not legacy_checkpoints_allowed():
            raise _refusal(name, unsafe or [], err) from err
        warnings.warn(
            f"seg_sparse: loading {name} with weights_only=False because legacy checkpoints "
            f"are trusted (globals outside the allowlist: {unsafe or 'unknown'}).",
            stacklevel=3,
        )
        checkpoint = torch.load(open_source(), map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a damaged file
        raise _unreadable(name, err) from err
    verify_checkpoint_digest(checkpoint, name)
    return checkpoint


def _unsafe_globals(source: Any) -> list[str] | None:
    """The non-allowlisted globals a torch zip checkpoint names; None if it cannot be read."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(source)
    except Exception:  # noqa: BLE001 - legacy (non-zip) format or damaged pickle
        return None


def _unreadable(name: str, err: Exception) -> CorruptCheckpointError:
    reason = one_line(err).split(". ")[0][:200]
    if len(reason) < 20:  # e.g. a bare KeyError: 101
        reason = f"{type(err).__name__}: {reason}".rstrip(": ")
    return CorruptCheckpointError(f"checkpoint '{name}' cannot be read: it is truncated, damaged "
                                  f"or not a torch checkpoint (torch: {reason})")


def _refusal(name: str, unsafe: list[str], err: Exception) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"Refusing to load checkpoint '{name}': it needs globals outside the weights-only "
        f"allowlist ({', '.join(unsafe) or _unpickler_reason(err)}). Checkpoints written by "
        f"seg_sparse (with SafeCheckpointHook) contain plain data only. If this file comes "
        f"from a source you trust (e.g. an older mmengine run), opt in with {TRUST_CLI_FLAG}, "
        f"the environment variable {TRUST_ENV_VAR}=1, or "
        f"seg_sparse.compat.allow_legacy_checkpoints(); unpickling an untrusted file can "
        f"execute arbitrary code."
    )


def _unpickler_reason(err: Exception) -> str:
    """The line of torch's long weights-only message that names the refused global."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reasons = [line for line in lines if "global" in line.lower()]
    return reasons[0] if reasons else (lines[-1] if lines else repr(err))


def checkpoint_digest(checkpoint: Mapping) -> str:
    """SHA-256 over every tensor, numpy array and plain value of ``checkpoint``, in order.

    Tensors count with dtype, shape and raw bytes (on the CPU); the record itself
    (``meta[DIGEST_KEY]``) is left out. Objects of other types (only in trusted legacy
    files) count by type name.
    """
    meta = checkpoint.get("meta")
    if isinstance(meta, Mapping) and DIGEST_KEY in meta:
        checkpoint = {**checkpoint, "meta": {k: v for k, v in meta.items() if k != DIGEST_KEY}}
    digest = hashlib.new(DIGEST_ALGORITHM)
    _feed(digest, checkpoint)
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, np.ndarray) and value.dtype != object:
        digest.update(f"A{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, Mapping):
        digest.update(b"{")
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[" if isinstance(value, list) else b"(")
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    elif isinstance(value, (*_PLAIN_TYPES, np.generic)):
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    else:
        digest.update(f"<{type(value).__qualname__}>".encode())


def record_checkpoint_digest(checkpoint: dict) -> None:
    """Store :func:`checkpoint_digest` in ``checkpoint['meta']`` (the last edit before saving)."""
    meta = checkpoint.setdefault("meta", {})
    meta.pop(DIGEST_KEY, None)
    meta[DIGEST_KEY] = {"algorithm": DIGEST_ALGORITHM, "digest": checkpoint_digest(checkpoint)}


def verify_checkpoint_digest(checkpoint: Any, name: str) -> None:
    """Raise :class:`CorruptCheckpointError` if ``checkpoint`` records a digest it does not
    match; checkpoints without a record (written elsewhere) pass unchecked."""
    meta = checkpoint.get("meta") if isinstance(checkpoint, Mapping) else None
    record = meta.get(DIGEST_KEY) if isinstance(meta, Mapping) else None
    if not isinstance(record, Mapping):
        return
    if record.get("algorithm") != DIGEST_ALGORITHM or not isinstance(record.get("digest"), str):
        raise CorruptCheckpointError(f"checkpoint '{name}' has an unreadable integrity record "
                                     f"{dict(record)!r}")
    if checkpoint_digest(checkpoint) != record["digest"]:
        raise CorruptCheckpointError(
            f"checkpoint '{name}' is damaged: its tensors or data differ from the "
            f"{DIGEST_ALGORITHM} digest recorded when it was saved; restore the file or resume "
            "from an earlier checkpoint")
