"""Weights-only checkpoints: Runner checkpoints with SafeCheckpointHook, resume, refusal, opt-in."""

import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

import seg_sparse  # noqa: F401  (registers the hook, the loader and the allowlist)
from seg_sparse.compat import (
    TRUST_ENV_VAR,
    UnsafeCheckpointError,
    allow_legacy_checkpoints,
    load_checkpoint_safely,
)

MAX_ITERS = 6


class ToySegmentor(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        # as in mmseg configs; mmengine reverts it to BN when not distributed
        self.bn = build_norm_layer(dict(type="SyncBN"), 4)[1]
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, inputs, labels=None, mode="tensor"):
        logits = self.head(F.relu(self.bn(self.conv(inputs))))
        if mode == "loss":
            loss = F.cross_entropy(logits, labels)
            # numpy scalars in the runtime info, as mmengine's logger writes (its 'eta')
            MessageHub.get_current_instance().update_info("toy_loss", np.float64(loss.item()))
            return {"loss": loss}
        return logits


class ToyData(Dataset):
    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(8, 3, 8, 8, generator=generator)
        self.labels = (self.images[:, 0] > 0).long()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return {"inputs": self.images[index], "labels": self.labels[index]}


def make_runner(work_dir, max_iters=MAX_ITERS, name="run", **kwargs) -> Runner:
    return Runner(
        model=ToySegmentor(),
        work_dir=str(work_dir),
        experiment_name=f"{name}_{os.getpid()}_{id(work_dir)}",
        train_dataloader=dict(
            dataset=ToyData(), batch_size=2, num_workers=0,
            sampler=dict(type="DefaultSampler", shuffle=True),
            collate_fn=dict(type="default_collate"),
        ),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=1e-4)),
        param_scheduler=dict(type="PolyLR", power=0.9, eta_min=1e-4, by_epoch=False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type="CheckpointHook", interval=3, by_epoch=False),
            logger=dict(type="LoggerHook", interval=1),
        ),
        custom_hooks=[dict(type="SafeCheckpointHook")],
        randomness=dict(seed=0),
        log_level="WARNING",
        **kwargs,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One uninterrupted run; its iter_3 checkpoint is resumed by the tests."""
    work_dir = tmp_path_factory.mktemp("safe_ckpt")
    runner = make_runner(work_dir)
    assert not isinstance(runner.model.bn, nn.SyncBatchNorm)  # reverted in one process
    assert isinstance(runner.model.bn, nn.modules.batchnorm._BatchNorm)
    runner.train()
    return runner, work_dir


def test_runner_checkpoint_has_no_unsafe_globals(trained):
    _, work_dir = trained
    path = str(work_dir / "iter_3.pth")
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    checkpoint = torch.load(path, weights_only=True)  # plain torch, nothing else needed
    assert checkpoint["meta"]["iter"] == 3
    loss_log = checkpoint["message_hub"]["log_scalars"]["train/loss"]
    assert loss_log["type"] == "HistoryBuffer" and len(loss_log["log_history"]) == 3
    assert type(checkpoint["message_hub"]["runtime_info"]["toy_loss"]) is float


def test_resume_restores_iteration_optimizer_schedule_and_logs(trained, tmp_path):
    full_run, work_dir = trained
    path = str(work_dir / "iter_3.pth")
    saved = torch.load(path, weights_only=True)

    resumed = make_runner(tmp_path, name="resumed", load_from=path, resume=True)
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
    for (name, ours), theirs in zip(
        resumed.model.state_dict().items(), full_run.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(ours, theirs, msg=name)
    assert resumed.optim_wrapper.get_lr()["lr"] == full_run.optim_wrapper.get_lr()["lr"]
    assert len(resumed.message_hub.get_scalar("train/loss").data[0]) == MAX_ITERS


def test_runner_load_checkpoint_uses_the_weights_only_loader(trained, tmp_path):
    full_run, work_dir = trained
    runner = make_runner(tmp_path, name="load")
    runner.load_checkpoint(str(work_dir / f"iter_{MAX_ITERS}.pth"))
    torch.testing.assert_close(runner.model.conv.weight, full_run.model.conv.weight)


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


def test_missing_or_corrupt_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_checkpoint_safely(tmp_path / "nope.pth")
    path = tmp_path / "truncated.pth"
    torch.save({"w": torch.ones(100)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(RuntimeError, match="could not load checkpoint .*truncated.pth"):
        load_checkpoint_safely(path)


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
