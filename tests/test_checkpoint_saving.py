"""Atomic checkpoint saves (issue 12.2) and integrity-checked, clearly refused damaged files
(issue 12.5), on the seconds-fast toy Runner."""

from __future__ import annotations

import errno

import pytest
import torch
from toy_runner import make_runner

import seg_sparse.fileio
from seg_sparse.compat import CorruptCheckpointError, checkpoint_digest, load_checkpoint_safely
from seg_sparse.compat.checkpoint import DIGEST_KEY
from seg_sparse.engine import CheckpointSaveError

BIG = 1000  # bytes: checkpoints are larger, last_checkpoint is smaller


def _checkpoint_writes(monkeypatch, on_write):
    """Call ``on_write(index, data)`` before every checkpoint-sized atomic write."""
    real_write = seg_sparse.fileio.write_all
    count = []

    def write(file, data):
        if len(data) > BIG:
            count.append(1)
            on_write(len(count), data, file)
        real_write(file, data)

    monkeypatch.setattr(seg_sparse.fileio, "write_all", write)


@pytest.mark.slow
def test_failed_save_keeps_the_previous_checkpoint_and_resume_works(tmp_path, monkeypatch):
    work_dir = tmp_path / "work"

    def disk_full_on_second_checkpoint(index, data, file):
        if index == 2:  # iter_4: half written, then the disk is full
            file.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    _checkpoint_writes(monkeypatch, disk_full_on_second_checkpoint)
    runner = make_runner(work_dir, max_iters=6, interval=2, max_keep_ckpts=1)
    with pytest.raises(CheckpointSaveError) as info:
        runner.train()
    message = str(info.value)
    assert "\n" not in message and "iter_4.pth" in message and "No space left" in message
    assert "iter_2.pth" in message  # the checkpoint that survived

    assert sorted(p.name for p in work_dir.iterdir() if p.suffix in (".pth", ".tmp")) == [
        "iter_2.pth"]
    assert not list(work_dir.glob(".*.tmp"))
    assert (work_dir / "last_checkpoint").read_text().endswith("iter_2.pth")
    assert load_checkpoint_safely(work_dir / "iter_2.pth")["meta"]["iter"] == 2

    monkeypatch.undo()
    resumed = make_runner(work_dir, max_iters=6, interval=2, max_keep_ckpts=1, resume=True)
    resumed.train()
    assert resumed.iter == 6
    assert sorted(p.name for p in work_dir.glob("*.pth")) == ["iter_6.pth"]
    assert (work_dir / "last_checkpoint").read_text().endswith("iter_6.pth")


@pytest.mark.slow
def test_old_checkpoint_is_removed_only_after_the_new_one_is_complete(tmp_path, monkeypatch):
    work_dir = tmp_path / "work"
    seen = []

    def record(index, data, file):
        seen.append((index, sorted(p.name for p in work_dir.glob("*.pth")),
                     (work_dir / "last_checkpoint").read_text() if index > 1 else None))

    _checkpoint_writes(monkeypatch, record)
    make_runner(work_dir, max_iters=6, interval=2, max_keep_ckpts=1).train()
    # while iter_4 / iter_6 were being written, the previous file and pointer were still there
    assert seen[1][1] == ["iter_2.pth"] and seen[1][2].endswith("iter_2.pth")
    assert seen[2][1] == ["iter_4.pth"] and seen[2][2].endswith("iter_4.pth")
    assert sorted(p.name for p in work_dir.glob("*.pth")) == ["iter_6.pth"]


@pytest.mark.slow
def test_superseded_best_checkpoint_is_removed_after_the_new_one(tmp_path, monkeypatch):
    work_dir = tmp_path / "work"
    seen = []

    def record(index, data, file):
        seen.append(sorted(p.name for p in work_dir.glob("best_*.pth")))

    _checkpoint_writes(monkeypatch, record)
    make_runner(work_dir, max_iters=4, interval=2, max_keep_ckpts=1, save_best="score").train()
    # mmengine removed the old best before writing the new one; here both existed together
    # (the new one was complete) before the old one went
    assert ["best_score_iter_2.pth", "best_score_iter_4.pth"] in seen
    assert sorted(p.name for p in work_dir.glob("*.pth")) == ["best_score_iter_4.pth",
                                                              "iter_4.pth"]


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("integrity")
    make_runner(work_dir, max_iters=2, interval=2).train()
    return work_dir / "iter_2.pth"


def test_checkpoint_records_the_digest_of_its_tensors(checkpoint_file):
    checkpoint = torch.load(checkpoint_file, weights_only=True)
    record = checkpoint["meta"][DIGEST_KEY]
    assert record["algorithm"] == "sha256" and record["digest"] == checkpoint_digest(checkpoint)
    changed = {**checkpoint, "state_dict": dict(checkpoint["state_dict"])}
    changed["state_dict"]["conv.bias"] = changed["state_dict"]["conv.bias"] + 1e-6
    assert checkpoint_digest(changed) != record["digest"]


def test_zeroed_bytes_inside_tensor_data_are_detected(checkpoint_file, tmp_path):
    data = checkpoint_file.read_bytes()
    weight = torch.load(checkpoint_file, weights_only=True)["state_dict"]["conv.weight"]
    start = data.find(weight.numpy().tobytes())
    assert start > 0  # torch stores tensor data uncompressed
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(data[:start + 16] + bytes(32) + data[start + 48:])
    with pytest.raises(CorruptCheckpointError) as info:
        load_checkpoint_safely(damaged)
    assert str(damaged) in str(info.value) and "digest" in str(info.value)


@pytest.mark.parametrize("cut", ["empty", "head", "half", "tail"])
def test_truncated_or_empty_checkpoint_is_one_line(checkpoint_file, tmp_path, cut):
    data = checkpoint_file.read_bytes()
    keep = {"empty": 0, "head": 100, "half": len(data) // 2, "tail": len(data) - 20}[cut]
    path = tmp_path / f"{cut}.pth"
    path.write_bytes(data[:keep])
    with pytest.raises(CorruptCheckpointError) as info:
        load_checkpoint_safely(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert ("is empty (0 bytes)" if cut == "empty" else "truncated") in message
