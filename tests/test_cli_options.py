"""`seg-sparse` command line: help texts, checked --cfg-options, refusals that need no run."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import torch
from cli_support import CPU_CONFIG, REPO, SPARSE_CPU_CONFIG, seg_sparse
from mmengine.config import Config

from seg_sparse.apis import ConfigKeyError, load_config, merge_checked_options
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


@pytest.mark.parametrize("option, message", [
    ("train_cfg.max_iters=abc", "train_cfg.max_iters='abc' must be a positive integer"),
    ("model.backbone.sampler=foo", "model.backbone.sampler='foo' must be one of ['dense', "),
    ("model.backbone.grid_interval=-3", "model.backbone.grid_interval=-3 must be None"),
    ("model.backbone.grid_interval=2.5", "model.backbone.grid_interval=2.5 must be None"),
    ("model.sparse_loss_weight=-1", "model.sparse_loss_weight=-1 must be a finite number >= 0"),
    ("model.decode_head.loss_decode.loss_weight=-1", "loss_decode.loss_weight=-1 must be"),
    ("optim_wrapper.optimizer.lr=-0.01", "optim_wrapper.optimizer.lr=-0.01 must be a finite"),
    ("model.backbone.t_final=0", "model.backbone.t_final=0 must be a finite number > 0"),
    ("model.backbone.t_final=2.0", "t_final=2.0 must not exceed t0=1.0"),
    ("train_dataloader.batch_size=0", "train_dataloader.batch_size=0 must be a positive"),
    ("model.decode_head.num_classes=abc", "model.decode_head.num_classes='abc' must be a"),
    ("model.auxiliary_head.num_classes=0", "model.auxiliary_head.num_classes=0 must be a"),
    ("+env_cfg.dist_cfg.timeout=abc", "env_cfg.dist_cfg.timeout='abc' must be a finite"),
])
def test_bad_config_values_are_one_line_naming_the_key(tmp_path, capsys, option, message):
    assert seg_sparse("train", SPARSE_CPU_CONFIG, "--work-dir", str(tmp_path / "w"),
                      "--cfg-options", option) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seg-sparse train: error: config value")
    assert message in err[0]
    assert not (tmp_path / "w").exists()  # refused before anything was created


@pytest.mark.parametrize("case", ["read-only folder", "below a file"])
def test_unwritable_work_dir_is_one_line(tmp_path, capsys, case):
    parent = tmp_path / "parent"
    if case == "read-only folder":
        parent.mkdir(mode=0o500)
        if os.access(parent, os.W_OK):
            pytest.skip("running as a user who may write anywhere (root)")
        reason = "Permission denied"
    else:
        parent.write_text("a file, not a folder")
        reason = "Not a directory"
    assert seg_sparse("train", CPU_CONFIG, "--work-dir", str(parent / "w")) == 2
    parent.chmod(0o700)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"seg-sparse train: error: directory '{parent / 'w'}' is not writable: "
                   f"{reason}"]


@pytest.mark.parametrize("given", [None, 45])
def test_cpu_process_group_gets_a_short_default_timeout(monkeypatch, given):
    import torch.distributed as dist

    from seg_sparse.cli.common import CPU_DIST_TIMEOUT_S, setup_launcher

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setenv("RANK", "0")
    cfg = Config(dict(launcher="pytorch", env_cfg=dict(dist_cfg=dict(backend="nccl"))))
    if given is not None:
        cfg.env_cfg.dist_cfg.timeout = given
    setup_launcher(cfg)
    expected = given or CPU_DIST_TIMEOUT_S
    assert CPU_DIST_TIMEOUT_S < 30 * 60  # shorter than gloo's default
    assert calls == [dict(backend="gloo", timeout=timedelta(seconds=expected))]
    assert cfg.env_cfg.dist_cfg == dict(backend="gloo", timeout=expected)


def test_image_size_needs_the_pipelines_restated(tmp_path):
    """What configs/_base_/datasets/cityscapes_512x1024.py says about other image sizes."""
    base = REPO / "configs/_base_/datasets/cityscapes_512x1024.py"
    only_variables = tmp_path / "short_side_only.py"
    only_variables.write_text(f"_base_ = [{str(base)!r}]\nshort_side = 512\n"
                              "crop_size = (256, 512)\n")
    cfg = Config.fromfile(only_variables)
    assert cfg.short_side == 512
    assert _step(cfg.test_dataloader, "Resize").scale == (2048, 1024)  # unchanged
    assert _step(cfg.train_dataloader, "RandomCrop").crop_size == (512, 1024)

    uniform = Config.fromfile(REPO / "configs/fcn_dcn/fcn_r50-d8-dcn_4xb2-60k_cityscapes-"
                                     "uniform512.py")
    assert _step(uniform.test_dataloader, "Resize").scale == (1024, 512)
    assert _step(uniform.train_dataloader, "RandomCrop").crop_size == (256, 512)
    assert uniform.model.data_preprocessor.size == (256, 512)


def _step(loader, type_: str):
    return next(step for step in loader.dataset.pipeline if step["type"] == type_)


DEMO_HEAD_CONFIG = str(REPO / "configs/cpu/sparse-fcn-sparsehead_r50-d8-dcn-w16_1xb4-demo_"
                              "synthcity-64x128.py")


def test_top_level_variables_are_re_read():
    """`max_iters=5` re-reads the config with the variable replaced, so every key computed
    from it follows (the file's own variable, and one set in a base file of a base file)."""
    cfg = load_config(CPU_CONFIG, {"max_iters": 5, "crop_size": (32, 64)})
    assert cfg.train_cfg.max_iters == 5 and cfg.train_cfg.val_interval == 5
    assert cfg.param_scheduler[0].end == 5 and cfg.default_hooks.checkpoint.interval == 5
    assert cfg.model.data_preprocessor.size == (32, 64) and cfg.filename == CPU_CONFIG
    # data_root and max_iters are assigned in base files of this one; its keys hold a '.'
    cfg = load_config(DEMO_HEAD_CONFIG, {"max_iters": 7, "data_root": "/elsewhere/"})
    assert cfg.train_cfg.max_iters == 7 and cfg.param_scheduler[0].end == 7
    assert cfg.val_dataloader.dataset.data_root == "/elsewhere/"
    assert cfg.model.decode_head.type == "SparseFCNHead"  # the leaf's own content is kept


def test_key_inside_a_variable_is_refused_naming_where_it_is_set():
    with pytest.raises(ConfigKeyError) as err:
        load_config(DEMO_HEAD_CONFIG, {"crop_size.0": 32})
    message = str(err.value)
    assert "'crop_size=VALUE' replaces it whole" in message
    assert "fcn_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py" in message
    assert "model.data_preprocessor.size.0" in message


@pytest.mark.parametrize("pair, message", [
    ("train_cfg.max_iters", "'train_cfg.max_iters' has no '=VALUE'"),
    ("=3", "'=3' has no key before '='"),
])
def test_cfg_option_without_value_or_key(tmp_path, capsys, pair, message):
    with pytest.raises(SystemExit) as exit_info:
        seg_sparse("train", CPU_CONFIG, "--work-dir", str(tmp_path / "w"), "--cfg-options", pair)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("where", ["file", "base"])
def test_config_syntax_error_names_file_and_line(tmp_path, capsys, where):
    broken = tmp_path / "broken.py"
    broken.write_text(f"_base_ = [{CPU_CONFIG!r}]\nx = dict(a=1,\ny = 2\n")
    config = broken
    if where == "base":
        config = tmp_path / "child.py"
        config.write_text("_base_ = ['./broken.py']\nz = 1\n")
    assert seg_sparse("train", str(config), "--work-dir", str(tmp_path / "w")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"seg-sparse train: error: config file '{broken}', line 2: '(' was never "
                   "closed: x = dict(a=1,"]


def test_failing_config_statement_names_file_and_line(tmp_path, capsys):
    config = tmp_path / "undefined.py"
    config.write_text(f"_base_ = [{CPU_CONFIG!r}]\nx = 1\ny = max_iter + 1\n")
    assert seg_sparse("flops", str(config), "--out-dir", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"seg-sparse flops: error: config file '{config}', line 3: NameError: name "
                   "'max_iter' is not defined"]


@pytest.mark.parametrize("command", ["train", "flops"])
def test_directory_given_as_config_file(tmp_path, capsys, command):
    assert seg_sparse(command, str(tmp_path)) == 2
    assert f"config file '{tmp_path}' is a directory, not a file" in capsys.readouterr().err
