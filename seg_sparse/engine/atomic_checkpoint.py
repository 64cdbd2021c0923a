"""Checkpoint saving that cannot lose training: complete new file first, old ones removed last.

mmengine's ``CheckpointHook`` with ``max_keep_ckpts`` deletes the oldest checkpoint *before*
writing the new one, and writes it in place. On a full disk that loses everything: the old
file is gone, the new one is partial and ``last_checkpoint`` names a missing file.
:class:`AtomicCheckpointHook` orders it safely:

1. the checkpoint is written to a temporary file next to its final name, flushed, fsync'ed
   and renamed into place (:class:`AtomicLocalBackend`, through ``backend_args``);
2. ``last_checkpoint`` is replaced the same way, so it always names a complete file;
3. only then are checkpoints beyond ``max_keep_ckpts`` (and a superseded best checkpoint)
   removed.

A failed save raises :class:`CheckpointSaveError` naming the file and the reason; the previous
checkpoint and ``last_checkpoint`` are untouched, so ``--resume`` continues from there.
Checkpoints written to object stores (an ``out_dir`` with a scheme) keep mmengine's behaviour.

The hook also holds the work dir's lock while training (:mod:`.work_dir_lock`), so a second
training started on the same work dir by mmseg's / mmdet's own tools is refused rather than
overwriting this one's checkpoints (``seg-sparse train`` takes the lock even earlier).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook

from seg_sparse.errors import UserInputError
from seg_sparse.fileio import atomic_write_bytes, atomic_write_text

from .registry import register_hook
from .work_dir_lock import acquire_work_dir_lock, release_work_dir_lock

ATOMIC_BACKEND = "seg_sparse_atomic_local"
LAST_CHECKPOINT_FILE = "last_checkpoint"


class CheckpointSaveError(UserInputError, OSError):
    """A checkpoint could not be written (e.g. no space left); the previous one is intact."""


@register_backend(ATOMIC_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put`` / ``put_text`` replace files atomically."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath, encoding: str = "utf-8") -> None:
        atomic_write_bytes(filepath, obj.encode(encoding))


class _DeferredRemovals:
    """File-backend proxy that queues ``remove`` / ``rmtree`` until :meth:`flush`."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.pending: list[tuple[str, str]] = []

    def remove(self, path: str) -> None:
        self.pending.append(("remove", path))

    def rmtree(self, path: str) -> None:
        self.pending.append(("rmtree", path))

    def flush(self) -> None:
        for method, path in self.pending:
            if self._backend.exists(path):
                getattr(self._backend, method)(path)
        self.pending.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


@register_hook
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) with atomic writes and removal after success."""

    _atomic = False  # decided in before_train, once the output folder is known
    _locked_dir: str | None = None  # the work dir this hook locked (main process)

    def before_train(self, runner) -> None:
        if is_main_process() and acquire_work_dir_lock(runner.work_dir):
            self._locked_dir = runner.work_dir
        out_dir = self.out_dir if self.out_dir is not None else runner.work_dir
        self._atomic = (self.backend_args is None and self.file_client_args is None
                        and "://" not in str(out_dir))
        if self._atomic:
            self.backend_args = {"backend": ATOMIC_BACKEND}
        super().before_train(runner)

    def after_train(self, runner) -> None:
        super().after_train(runner)
        if self._locked_dir is not None:
            release_work_dir_lock(self._locked_dir)
            self._locked_dir = None

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if not self._atomic:
            return super()._save_checkpoint_with_step(runner, step, meta)
        path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(step))
        kept_before = list(getattr(self, "keep_ckpt_ids", ()))
        last_before = self.last_ckpt
        with _removals_deferred(self):  # an error leaves the queued removals undone
            try:
                self._plan_and_save(runner, step, meta)
            except OSError as err:
                self._roll_back(runner, kept_before, last_before)
                raise CheckpointSaveError(
                    f"could not save checkpoint '{path}': {err.strerror or err}; the previous "
                    f"checkpoint ({last_before or 'none'}) and last_checkpoint are intact"
                ) from err

    def _plan_and_save(self, runner, step, meta) -> None:
        """mmengine's bookkeeping (which ids to keep, ``last_ckpt``), the atomic save, then
        ``last_checkpoint``; removals go to the deferred backend."""
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                             self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                oldest = self.keep_ckpt_ids.popleft()
                self.file_backend.remove(self.file_backend.join_path(
                    self.out_dir, self.filename_tmpl.format(oldest)))
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
            backend_args=self.backend_args, **self.args)
        if is_main_process():
            atomic_write_text(self.file_backend.join_path(runner.work_dir, LAST_CHECKPOINT_FILE),
                              self.last_ckpt)

    def _roll_back(self, runner, kept_before: list, last_before: str | None) -> None:
        if self.max_keep_ckpts > 0:
            self.keep_ckpt_ids = deque(kept_before, self.max_keep_ckpts)
            runner.message_hub.update_info("keep_ckpt_ids", kept_before)
        self.last_ckpt = last_before
        if last_before is not None:
            runner.message_hub.update_info("last_ckpt", last_before)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """mmengine's, with the superseded best checkpoint removed only after the new one."""
        if not self._atomic:
            return super()._save_best_checkpoint(runner, metrics)
        with _removals_deferred(self):
            super()._save_best_checkpoint(runner, metrics)


@contextmanager
def _removals_deferred(hook: CheckpointHook) -> Iterator[_DeferredRemovals]:
    """Route the hook's removals to a queue, carried out (on the main process) only when the
    block finishes without an error."""
    backend = hook.file_backend
    deferred = _DeferredRemovals(backend)
    hook.file_backend = deferred
    try:
        yield deferred
    finally:
        hook.file_backend = backend
    if is_main_process():
        deferred.flush()
