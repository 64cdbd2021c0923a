"""``seg-sparse flops``: table, JSON, default input size, measured densities, errors."""

import json
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from seg_sparse.cli.flops import eval_input_shape
from seg_sparse.cli.main import main
from seg_sparse.data import generate_synthetic_cityscapes
from seg_sparse.flops import count_flops

REPO = Path(__file__).resolve().parents[1]
SPARSE_CPU = REPO / "configs/cpu/sparse-fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256_w0.1.py"
CITYSCAPES = REPO / "configs/fcn_dcn/fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024.py"
SMALL = ["model.backbone.base_channels=8", "model.backbone.stem_channels=8",
         "model.decode_head.in_channels=256", "model.decode_head.channels=16",
         "model.auxiliary_head.in_channels=128", "model.auxiliary_head.channels=8"]


def test_default_shape_is_the_test_resize():
    assert eval_input_shape(Config.fromfile(CITYSCAPES)) == (1024, 2048)
    assert eval_input_shape(Config.fromfile(SPARSE_CPU)) == (256, 512)


def test_dense_gflops_table_and_json(tmp_path, capsys):
    rc = main(["flops", str(SPARSE_CPU), "--shape", "32", "64", "--out-dir", str(tmp_path),
               "--cfg-options", *SMALL])
    assert rc == 0
    out = capsys.readouterr().out
    assert "layer4.2" in out and "backbone" in out and str(tmp_path / "flops.json") in out
    data = json.loads((tmp_path / "flops.json").read_text())
    assert data["input_shape"] == [32, 64] and data["sparse"] is None
    assert data["sampler"] == "stochastic"  # recorded for `seg-sparse curve`
    assert len(data["blocks"]) == 16

    cfg = Config.fromfile(SPARSE_CPU)
    cfg.merge_from_dict(dict(s.split("=") for s in SMALL))
    init_default_scope("mmseg")
    cfg.model.backbone.base_channels = cfg.model.backbone.stem_channels = 8
    cfg.model.decode_head.update(in_channels=256, channels=16)
    cfg.model.auxiliary_head.update(in_channels=128, channels=8)
    expected = count_flops(revert_sync_batchnorm(MODELS.build(cfg.model)), (32, 64))
    assert data["dense"]["backbone"] == pytest.approx(expected.backbone_dense)
    assert data["dense"]["head"] == pytest.approx(expected.head_gflops)
    assert data["dense"]["total"] == pytest.approx(expected.total_dense)


def test_checkpoint_adds_measured_densities(tmp_path, capsys):
    data_root = tmp_path / "synth"
    generate_synthetic_cityscapes(data_root, num_train=0, num_val=2, height=64, width=128,
                                  show_progress=False)
    config = tmp_path / "small.py"
    config.write_text(
        f"_base_ = [{str(SPARSE_CPU)!r}]\n"
        "model = dict(backbone=dict(base_channels=8, stem_channels=8,\n"
        "                           stage_with_dcn=(False, False, False, False)),\n"
        "             decode_head=dict(in_channels=256, channels=16),\n"
        "             auxiliary_head=dict(in_channels=128, channels=8))\n"
        "val_dataloader = dict(dataset=dict(pipeline=[\n"
        "    dict(type='LoadImageFromFile'),\n"
        "    dict(type='Resize', scale=(128, 64), keep_ratio=True),\n"
        "    dict(type='LoadAnnotations'),\n"
        "    dict(type='PackSegInputs')]))\n")
    init_default_scope("mmseg")
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    checkpoint = tmp_path / "model.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {}}, checkpoint)

    rc = main(["flops", str(config), "--checkpoint", str(checkpoint), "--num-images", "5",
               "--data-root", str(data_root), "--out-dir", str(tmp_path / "out")])
    assert rc == 0
    assert "mIoU (2 images)" in capsys.readouterr().out
    data = json.loads((tmp_path / "out/flops.json").read_text())
    assert data["num_images"] == 2 and data["measured_input_shape"] == [64, 128]
    assert data["input_shape"] == [64, 128]  # the test resize of this config
    assert 0 <= data["mIoU"] <= 100
    # a fresh model samples ~95% of positions (p = sigmoid(3)); the grid prior adds a few
    assert 0.85 < data["mean_density"] < 1.0
    assert all(0.8 < b["d1"] <= 1 and 0.8 < b["d2"] <= 1 for b in data["blocks"])
    dense, sparse = data["dense"], data["sparse"]
    assert sparse["head"] == dense["head"]
    assert sparse["backbone"] == pytest.approx(sum(b["executed"] for b in data["blocks"])
                                               + dense["backbone"]
                                               - sum(b["dense"] for b in data["blocks"]))


@pytest.mark.parametrize("argv, message", [
    (["missing.py"], "config file 'missing.py' does not exist"),
    ([str(SPARSE_CPU), "--checkpoint", "nope.pth"], "checkpoint 'nope.pth' does not exist"),
    ([str(SPARSE_CPU), "--num-images", "0"], "--num-images must be >= 1"),
])
def test_errors_are_reported_without_traceback(argv, message, capsys):
    assert main(["flops", *argv]) == 2
    assert message in capsys.readouterr().err


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["flops", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "seg-sparse flops configs/" in out
