"""One training per work dir: a second one is refused naming the owner; stale locks are taken
over (seg_sparse.engine.work_dir_lock)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_support import CPU_CONFIG, seg_sparse

from seg_sparse.engine import AtomicCheckpointHook
from seg_sparse.engine import work_dir_lock as lock_module
from seg_sparse.engine.work_dir_lock import (
    LOCK_FILE,
    WorkDirLockedError,
    acquire_work_dir_lock,
    release_work_dir_lock,
)

# Another training holding the lock: an flock on the file and its owner record, as
# acquire_work_dir_lock leaves them (plain Python, so the process starts in a blink).
HOLDER = """
import fcntl, json, os, socket, sys, time
file = open(sys.argv[1], "a+")
fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": "2024-01-01 00:00:00",
           "command": "seg-sparse train other.py"}, file)
file.flush()
print("locked", flush=True)
time.sleep(300)
"""


@pytest.fixture
def holder(tmp_path):
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(work_dir / LOCK_FILE)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    yield SimpleNamespace(work_dir=work_dir, process=process)
    process.kill()
    process.wait()


def test_second_training_is_refused_naming_the_owner(holder):
    with pytest.raises(WorkDirLockedError) as err:
        acquire_work_dir_lock(str(holder.work_dir))
    assert str(err.value).startswith(
        f"work dir '{holder.work_dir}' is in use by another training (pid {holder.process.pid} "
        f"on host {socket.gethostname()}, started 2024-01-01 00:00:00: seg-sparse train "
        "other.py); two runs would overwrite each other's checkpoints.")


def test_cli_refuses_before_anything_is_written(holder, capsys):
    rc = seg_sparse("train", CPU_CONFIG, "--work-dir", str(holder.work_dir))
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pid {holder.process.pid}" in err[0]
    assert err[0].startswith(f"seg-sparse train: error: work dir '{holder.work_dir}' is in use")
    assert os.listdir(holder.work_dir) == [LOCK_FILE]  # no config dump, no log folder


def test_checkpoint_hook_refuses_under_mmsegs_own_tools(holder):
    """A run started by mmseg's / mmdet's tools/train.py is stopped by the config's hook."""
    runner = SimpleNamespace(work_dir=str(holder.work_dir))
    with pytest.raises(WorkDirLockedError, match=f"pid {holder.process.pid}"):
        AtomicCheckpointHook(interval=1).before_train(runner)


def test_stale_lock_of_a_dead_process_is_taken_over(holder, monkeypatch):
    holder.process.kill()
    holder.process.wait()
    warnings = []
    monkeypatch.setattr(lock_module, "_warn_taken_over", lambda path, prev: warnings.append(prev))
    assert acquire_work_dir_lock(str(holder.work_dir)) is True
    try:
        assert [w["pid"] for w in warnings] == [holder.process.pid]
        record = json.loads((holder.work_dir / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid()
        assert acquire_work_dir_lock(str(holder.work_dir)) is False  # held by this process
    finally:
        release_work_dir_lock(str(holder.work_dir))
    assert not (holder.work_dir / LOCK_FILE).exists()


def test_without_flock_a_live_owner_pid_still_refuses(holder, monkeypatch):
    """File systems without flock: the recorded pid decides (alive here: refused)."""
    import fcntl

    def no_flock(*args):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.raises(WorkDirLockedError, match=f"pid {holder.process.pid}"):
        acquire_work_dir_lock(str(holder.work_dir))
    holder.process.kill()
    holder.process.wait()
    assert acquire_work_dir_lock(str(holder.work_dir)) is True
    release_work_dir_lock(str(holder.work_dir))


@pytest.mark.slow
def test_finished_training_releases_the_lock(trained):
    """The 2-iteration run of the session fixture left no lock behind."""
    assert not Path(trained.work_dir, LOCK_FILE).exists()
