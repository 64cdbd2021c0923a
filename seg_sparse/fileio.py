"""Atomic file writes: a reader sees the old file or the complete new one, never a partial file.

The data goes to a temporary file in the target's folder, is flushed and fsync'ed, then renamed
over the target (``os.replace`` is atomic on POSIX and Windows) and the folder is fsync'ed so
the rename itself survives a crash. On failure (a full disk, a killed process aside) the
temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from .errors import UserInputError

TEMP_SUFFIX = ".tmp"


class NotWritableError(UserInputError, PermissionError):
    """An output folder that cannot be created or written to."""


def temp_path_for(path: str | os.PathLike) -> str:
    """A unique hidden name next to ``path`` (same folder, so the rename stays atomic)."""
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file for writing; on a clean exit it replaces ``path``.

    ``mode`` is ``'wb'`` or ``'w'``. The file gets the permissions ``open`` would give
    (0o666 minus the umask), not ``mkstemp``'s 0o600.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes only ('wb' or 'w'), got mode {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    temp = temp_path_for(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(folder)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as file:
        write_all(file, data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_all(file: IO[bytes], data: bytes) -> None:
    """``file.write(data)``; a separate function so tests can inject a failing write."""
    file.write(data)


def fsync_dir(folder: str | os.PathLike) -> None:
    """Persist a rename in ``folder`` (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(os.fspath(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_writable_dir(folder: str | os.PathLike) -> None:
    """Create ``folder`` and prove a file can be written in it, before any long work starts.

    Raises :class:`NotWritableError` naming the folder.
    """
    folder = os.fspath(folder)
    try:
        os.makedirs(folder, exist_ok=True)
        probe = temp_path_for(os.path.join(folder, "write_test"))
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as err:
        raise NotWritableError(f"directory '{folder}' is not writable: {err.strerror or err}") \
            from err


class InputFileError(UserInputError, FileNotFoundError):
    """An input file that is missing, or a folder where a file was expected."""


def check_input_file(path: str | os.PathLike, what: str = "file") -> None:
    """Raise :class:`InputFileError` naming ``path`` unless it is an existing regular file
    (a folder is reported as a folder, not as missing)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputFileError(f"{what} '{path}' is a directory, not a file")
    if not os.path.isfile(path):
        raise InputFileError(f"{what} '{path}' does not exist")


def check_dir_creatable(folder: str | os.PathLike) -> None:
    """Raise :class:`NotWritableError` naming ``folder`` if it could not be created or written
    (a parent is a file, or the nearest existing parent is read-only), without creating it:
    for outputs checked before the work starts and written after it."""
    folder = os.path.abspath(os.fspath(folder))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise NotWritableError(f"directory '{folder}' cannot be created: '{existing}' is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise NotWritableError(f"directory '{folder}' is not writable: Permission denied "
                               f"('{existing}')")
