"""`seg-sparse` command line: help texts, checked --cfg-options, refusals that need no run."""

from __future__ import annotations

import pytest
import torch
from cli_support import CPU_CONFIG, seg_sparse
from mmengine.config import Config

from seg_sparse.cli.cfg_options import ConfigKeyError, merge_checked_options
from seg_sparse.cli.main import COMMANDS


@pytest.fixture(scope="module")
def cfg() -> Config:
    return Config.fromfile(CPU_CONFIG)


@pytest.mark.parametrize("command", [name.replace("_", "-") for name in COMMANDS])
def test_every_command_has_help_with_example(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        seg_sparse(command, "--help")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"seg-sparse {command}" in out and "example" in out


def test_existing_and_constructor_keys_are_merged(cfg):
    cfg = cfg.copy()
    merge_checked_options(cfg, {
        "train_cfg.max_iters": 7,
        "param_scheduler.0.end": 7,
        "model.backbone.frozen_stages": 1,  # ResNet argument absent from the config
        "model.backbone.init_cfg.checkpoint": "x.pth",  # below a new constructor argument
        "randomness": {"seed": 3},  # a Runner argument
        "+env_cfg.dist_cfg.timeout": 60,  # '+' adds a key on purpose
    })
    assert cfg.train_cfg.max_iters == 7 and cfg.param_scheduler[0].end == 7
    assert cfg.model.backbone.frozen_stages == 1
    assert cfg.model.backbone.init_cfg.checkpoint == "x.pth"
    assert cfg.randomness.seed == 3 and cfg.env_cfg.dist_cfg.timeout == 60


@pytest.mark.parametrize("key, message", [
    ("model.backbone.depht", "Did you mean: model.backbone.depth?"),
    ("train_cfg.max_iter", "Did you mean: train_cfg.max_iters"),
    ("max_iter", "Did you mean: train_cfg.max_iters?"),
    ("param_scheduler.3.end", "'param_scheduler' is a list of 1 items"),
    ("optim_wrapper.optimizer.lr.x", "'optim_wrapper.optimizer.lr' is a float"),
    ("data_root", "e.g. train_dataloader.dataset.data_root, val_dataloader.dataset.data_root"),
    ("max_iters", "train_cfg.max_iters"),
])
def test_unknown_or_ineffective_keys_are_refused(cfg, key, message):
    cfg = cfg.copy()
    before = cfg.pretty_text
    with pytest.raises(ConfigKeyError, match="--cfg-options") as err:
        merge_checked_options(cfg, {"train_cfg.max_iters": 5, key: 1})
    assert message in str(err.value)
    assert cfg.pretty_text == before  # nothing merged


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_amp_is_refused_without_cuda(tmp_path, capsys):
    assert seg_sparse("train", CPU_CONFIG, "--amp", "--work-dir", str(tmp_path)) == 2
    assert "--amp needs a CUDA GPU" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")
def test_pytorch_launcher_outside_torchrun_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    rc = seg_sparse("train", CPU_CONFIG, "--launcher", "pytorch", "--work-dir", str(tmp_path))
    assert rc == 2
    assert "expects to be started by torchrun" in capsys.readouterr().err


def test_missing_config_file(tmp_path, capsys):
    assert seg_sparse("train", str(tmp_path / "nope.py")) == 2
    assert "nope.py' does not exist" in capsys.readouterr().err
