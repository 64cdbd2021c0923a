"""One training per work dir: a lock file that names its owner.

Two trainings started on the same work dir both ran and overwrote each other's checkpoints and
``last_checkpoint``. A training now holds ``<work_dir>/.seg_sparse_train.lock`` for as long as
it runs: an ``flock`` on the file (released by the kernel when the process ends, however it
ends), with the owner's pid, host, start time and command line written into it. A second
training on the same work dir is refused with :class:`WorkDirLockedError` naming that owner. A
lock file left behind by a process that died (SIGKILL, power loss) holds no ``flock`` any more
and is taken over with a warning. On a file system without ``flock`` support the owner's pid is
checked instead (same host: alive or not; another host: refused, naming it).

``seg-sparse train`` takes the lock before it builds the Runner (which already writes the
config dump and logs); :class:`~seg_sparse.engine.AtomicCheckpointHook` takes it in
``before_train`` for runs started by mmseg's / mmdet's own tools (a no-op when this process
holds it already). Only the main process (rank 0) locks.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from typing import IO, Any

from seg_sparse.errors import UserInputError

LOCK_FILE = ".seg_sparse_train.lock"

#: work dir (absolute) -> open lock file of the locks this process holds
_held: dict[str, IO[str]] = {}


class WorkDirLockedError(UserInputError, RuntimeError):
    """The work dir is in use by another training."""


def lock_path(work_dir: str) -> str:
    return os.path.join(os.path.abspath(work_dir), LOCK_FILE)


def acquire_work_dir_lock(work_dir: str) -> bool:
    """Lock ``work_dir`` for this process. True if this call took the lock (the caller
    releases it with :func:`release_work_dir_lock`), False if this process held it already.
    Raises :class:`WorkDirLockedError` naming the owner if another live process holds it."""
    key = os.path.abspath(work_dir)
    if key in _held:
        return False
    os.makedirs(key, exist_ok=True)
    path = lock_path(key)
    for _ in range(5):  # retried only when the file is replaced under us
        file = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held while training
        try:
            previous = _take(file, path)
        except BaseException:
            file.close()
            raise
        if previous is _REPLACED:
            file.close()
            continue
        _write_owner(file)
        _held[key] = file
        if previous:
            _warn_taken_over(path, previous)
        return True
    raise WorkDirLockedError(f"could not lock work dir '{key}': its lock file '{path}' keeps "
                             "being replaced by another process")


def release_work_dir_lock(work_dir: str) -> None:
    """Remove the lock file and release the lock (no-op if this process does not hold it)."""
    file = _held.pop(os.path.abspath(work_dir), None)
    if file is None:
        return
    try:
        os.unlink(file.name)  # while still locked: a waiting process re-checks the inode
    except FileNotFoundError:
        pass
    file.close()


def holds_work_dir_lock(work_dir: str) -> bool:
    return os.path.abspath(work_dir) in _held


_REPLACED = object()


def _take(file: IO[str], path: str) -> Any:
    """Lock the open ``file``: the previous owner's record if it was stale, None if there was
    none, :data:`_REPLACED` if the path now names another file (retry)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None
    locked = False
    if fcntl is not None:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            raise WorkDirLockedError(_locked_message(path, _read_owner(file))) from None
        except OSError:  # a file system without flock: fall back to the recorded pid
            locked = False
    try:
        if os.stat(path).st_ino != os.fstat(file.fileno()).st_ino:
            return _REPLACED  # released and removed between our open and our lock
    except FileNotFoundError:
        return _REPLACED
    owner = _read_owner(file)
    if not locked and owner and _is_alive(owner):
        raise WorkDirLockedError(_locked_message(path, owner))
    return owner or None


def _read_owner(file: IO[str]) -> dict[str, Any]:
    file.seek(0)
    try:
        owner = json.loads(file.read() or "{}")
    except json.JSONDecodeError:
        return {}
    return owner if isinstance(owner, dict) else {}


def _write_owner(file: IO[str]) -> None:
    file.seek(0)
    file.truncate()
    json.dump({"pid": os.getpid(), "host": socket.gethostname(),
               "started": time.strftime("%Y-%m-%d %H:%M:%S"),
               "command": " ".join(sys.argv)}, file)
    file.write("\n")
    file.flush()


def _is_alive(owner: dict[str, Any]) -> bool:
    """Whether the recorded owner may still run (another host cannot be checked: assume so)."""
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(owner.get("pid", -1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    return True


def _describe(owner: dict[str, Any]) -> str:
    if not owner:
        return "a process that has not written its name yet"
    return (f"pid {owner.get('pid')} on host {owner.get('host')}, started "
            f"{owner.get('started')}: {owner.get('command')}")


def _locked_message(path: str, owner: dict[str, Any]) -> str:
    return (f"work dir '{os.path.dirname(path)}' is in use by another training "
            f"({_describe(owner)}); two runs would overwrite each other's checkpoints. Wait "
            "for it to finish or stop it, or pass another --work-dir (if that process is "
            f"gone, delete '{path}')")


def _warn_taken_over(path: str, previous: dict[str, Any]) -> None:
    from mmengine.logging import print_log

    print_log(f"work dir lock '{path}': took over the stale lock of {_describe(previous)}, "
              "which no longer runs", logger="current", level=logging.WARNING)
