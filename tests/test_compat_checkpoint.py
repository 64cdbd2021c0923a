"""Weights-only checkpoints: Runner checkpoints with SafeCheckpointHook, resume, refusal, opt-in."""

import os
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer
from torch import nn
from toy_runner import MAX_ITERS, make_runner

from seg_sparse.compat import (
    TRUST_ENV_VAR,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    allow_legacy_checkpoints,
    load_checkpoint_safely,
)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """One uninterrupted run; its iter_3 checkpoint is resumed by the tests."""
    work_dir = tmp_path_factory.mktemp("safe_ckpt")
    runner = make_runner(work_dir)
    assert not isinstance(runner.model.bn, nn.SyncBatchNorm)  # reverted in one process
    assert isinstance(runner.model.bn, nn.modules.batchnorm._BatchNorm)
    runner.train()
    return runner, work_dir


def test_runner_checkpoint_has_no_unsafe_globals(toy_run):
    _, work_dir = toy_run
    path = str(work_dir / "iter_3.pth")
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    checkpoint = torch.load(path, weights_only=True)  # plain torch, nothing else needed
    assert checkpoint["meta"]["iter"] == 3
    loss_log = checkpoint["message_hub"]["log_scalars"]["train/loss"]
    assert loss_log["type"] == "HistoryBuffer" and len(loss_log["log_history"]) == 3
    assert type(checkpoint["message_hub"]["runtime_info"]["toy_loss"]) is float


def test_resume_restores_iteration_optimizer_schedule_and_logs(toy_run, tmp_path):
    full_run, work_dir = toy_run
    path = str(work_dir / "iter_3.pth")
    saved = torch.load(path, weights_only=True)

    resumed = make_runner(tmp_path, load_from=path, resume=True)
    resumed.resume(path)
    assert resumed.iter == 3
    buffer = resumed.message_hub.get_scalar("train/loss")
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.data[0].tolist() == saved["message_hub"]["log_scalars"]["train/loss"][
        "log_history"]
    state = resumed.optim_wrapper.optimizer.state_dict()
    momentum = next(iter(state["state"].values()))["momentum_buffer"]
    torch.testing.assert_close(momentum, next(iter(saved["optimizer"]["state"].values()))[
        "momentum_buffer"])
    assert resumed.param_schedulers[0].last_step == 3

    resumed.train()  # continues 3 -> 6 and ends where the uninterrupted run ended
    assert resumed.iter == MAX_ITERS
    assert resumed.optim_wrapper.get_lr()["lr"] == full_run.optim_wrapper.get_lr()["lr"]
    assert len(resumed.message_hub.get_scalar("train/loss").data[0]) == MAX_ITERS


@pytest.mark.parametrize("seed", [0, None])
def test_resume_repeats_the_uninterrupted_run_bit_for_bit(toy_run, tmp_path, seed):
    """Dropout (torch RNG), numpy noise in the data and the shuffled sampler all continue where
    they were; seed None: mmengine draws a new sampler seed, the checkpoint's is restored."""
    full_run, work_dir = toy_run
    resumed = make_runner(tmp_path, seed=seed, load_from=str(work_dir / "iter_3.pth"),
                          resume=True)
    resumed.train()
    for (name, ours), theirs in zip(
        resumed.model.state_dict().items(), full_run.model.state_dict().values(), strict=True
    ):
        assert torch.equal(ours, theirs), name
    losses = [resumed.message_hub.get_scalar("train/loss").data[0],
              full_run.message_hub.get_scalar("train/loss").data[0]]
    assert losses[0].tolist() == losses[1].tolist()


def test_runner_load_checkpoint_uses_the_weights_only_loader(toy_run, tmp_path):
    full_run, work_dir = toy_run
    runner = make_runner(tmp_path / "load")
    runner.load_checkpoint(str(work_dir / f"iter_{MAX_ITERS}.pth"))
    torch.testing.assert_close(runner.model.conv.weight, full_run.model.conv.weight)
    # only seg_sparse's loader raises its own refusal and checks the recorded digest
    crafted = tmp_path / "crafted.pth"
    torch.save({"state_dict": {}, "x": NotAllowlisted()}, crafted)
    with pytest.raises(UnsafeCheckpointError, match="NotAllowlisted"):
        runner.load_checkpoint(str(crafted))
    damaged = tmp_path / "damaged.pth"
    checkpoint = torch.load(work_dir / f"iter_{MAX_ITERS}.pth", weights_only=True)
    checkpoint["state_dict"]["conv.weight"][0, 0, 0, 0] += 1.0
    torch.save(checkpoint, damaged)
    with pytest.raises(CorruptCheckpointError, match="damaged.pth"):
        runner.load_checkpoint(str(damaged))


class NotAllowlisted:
    """A custom class: weights-only loading must refuse to rebuild it."""

    def __init__(self) -> None:
        self.payload = 1


@pytest.mark.parametrize(
    "extra, global_name",
    [(os.system, f"{os.name}.system"), (NotAllowlisted(), "NotAllowlisted")],
)
def test_disallowed_global_is_refused_with_instructions(tmp_path, extra, global_name):
    path = tmp_path / "crafted.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "extra": extra}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint_safely(path)
    message = str(info.value)
    assert str(path) in message and global_name in message
    assert "--trust-checkpoint" in message and TRUST_ENV_VAR in message

    runner_path_error = pytest.raises(UnsafeCheckpointError, match="Refusing to load")
    with runner_path_error:  # mmengine's loader goes through the same check
        from mmengine.runner import CheckpointLoader

        CheckpointLoader.load_checkpoint(str(path), map_location="cpu")


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_checkpoint_safely(tmp_path / "nope.pth")


@pytest.fixture
def legacy_checkpoint(tmp_path):
    """What mmengine writes without the hook: a pickled HistoryBuffer (needs getattr)."""
    buffer = HistoryBuffer([1.0, 2.0], [1, 1])
    path = tmp_path / "legacy.pth"
    torch.save({"state_dict": {"w": torch.ones(2)},
                "message_hub": {"log_scalars": {"train/loss": buffer}}}, path)
    assert "builtins.getattr" in torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    return path


def test_legacy_checkpoint_needs_an_explicit_opt_in(legacy_checkpoint, monkeypatch):
    monkeypatch.delenv(TRUST_ENV_VAR, raising=False)
    with pytest.raises(UnsafeCheckpointError, match="builtins.getattr"):
        load_checkpoint_safely(legacy_checkpoint)
    with pytest.raises(pickle.UnpicklingError):  # weights_only stays on for plain torch.load
        torch.load(legacy_checkpoint)

    with pytest.warns(UserWarning, match="trusted"):
        allow_legacy_checkpoints()
    try:
        with pytest.warns(UserWarning, match="weights_only=False"):
            checkpoint = load_checkpoint_safely(legacy_checkpoint)
        assert checkpoint["message_hub"]["log_scalars"]["train/loss"].data[0].tolist() == [1, 2]
        with pytest.raises(pickle.UnpicklingError):  # still only through our loader
            torch.load(legacy_checkpoint)
    finally:
        allow_legacy_checkpoints(False)


def test_legacy_opt_in_by_environment(legacy_checkpoint, monkeypatch):
    monkeypatch.setenv(TRUST_ENV_VAR, "1")
    with pytest.warns(UserWarning, match="weights_only=False"):
        assert torch.equal(load_checkpoint_safely(legacy_checkpoint)["state_dict"]["w"],
                           torch.ones(2))
