"""The paper's configs build the paper's backbone, and the FLOPs counter follows each config.

The paper's segmentation ResNet-50 has a 128-channel deep stem (3->64->64->128): with it the
dense DCN backbone counts the paper's 920.6 GFLOPs at 1024x2048 (Table 2, uniform 1024), with
mmseg's 64-channel stem 873.96.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from seg_sparse.cli.main import main
from seg_sparse.flops import count_flops
from seg_sparse.models.backbones import SparseResNetV1c

REPO = Path(__file__).resolve().parents[1]
PAPER_CONFIGS = sorted((REPO / "configs/fcn_dcn").glob("*.py")) + sorted(
    (REPO / "configs/sparse_fcn").glob("*.py"))
DENSE = REPO / "configs/fcn_dcn/fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024.py"
DENSE_STEM64 = REPO / "configs/fcn_dcn/fcn_r50-d8-dcn-stem64_4xb2-60k_cityscapes-512x1024.py"
TINY = dict(depth=50, stem_channels=8, base_channels=8, strides=(1, 2, 1, 1),
            dilations=(1, 1, 2, 4), dcn=dict(type="DCN", deform_groups=1),
            stage_with_dcn=(False, True, True, True))


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.name)
def test_paper_configs_use_the_paper_stem_and_stem64_variants_mmsegs(path: Path) -> None:
    backbone = Config.fromfile(path).model.backbone
    assert backbone.type == "SparseResNetV1c" and backbone.depth == 50
    assert backbone.stem_channels == (64 if "-stem64_" in path.name else 128)


def test_both_stem_variants_exist_for_the_dense_and_the_sparse_model() -> None:
    names = {p.name for p in PAPER_CONFIGS}
    assert "fcn_r50-d8-dcn-stem64_4xb2-60k_cityscapes-512x1024.py" in names
    assert "sparse-fcn_r50-d8-dcn-stem64_4xb2-60k_cityscapes-512x1024_w0.1.py" in names


@pytest.mark.parametrize("config, gflops", [(DENSE, 920.58), (DENSE_STEM64, 873.96)],
                         ids=["paper-stem128", "mmseg-stem64"])
def test_dense_backbone_counts_the_papers_gflops_at_1024x2048(config: Path,
                                                              gflops: float) -> None:
    """Counted at 64x128 and scaled by 256: every feature map of this backbone (output
    stride 8) shrinks exactly 16x per side, so the count is exactly proportional."""
    init_default_scope("mmseg")
    backbone = revert_sync_batchnorm(MODELS.build(Config.fromfile(config).model.backbone))
    report = count_flops(backbone, (64, 128))
    assert report.head == 0
    assert report.backbone_dense * 256 == pytest.approx(gflops, abs=0.005)


def test_interpolation_flops_use_each_blocks_window() -> None:
    reports = {}
    for window in (7, 5):
        backbone = SparseResNetV1c(interp_window=window, **dict(TINY, dcn=None))
        reports[window] = count_flops(backbone, (32, 48))
    for b7, b5 in zip(reports[7].blocks, reports[5].blocks, strict=True):
        assert b7.interp1 > 0 and b7.interp2 > 0
        assert b5.interp1 * 49 == b7.interp1 * 25 and b5.interp2 * 49 == b7.interp2 * 25
    # layer1.0: 7x7 over conv1's 8 channels at 8x12 (stride 4), and over 32 at the output
    first = reports[7].blocks[0]
    assert (first.interp1, first.interp2) == (49 * 8 * 8 * 12, 49 * 32 * 8 * 12)


def test_flops_command_counts_a_bare_backbone_config(tmp_path: Path, capsys) -> None:
    config = tmp_path / "backbone.py"
    config.write_text("custom_imports = dict(imports=['seg_sparse'], "
                      "allow_failed_imports=False)\n"
                      f"model = dict(type='SparseResNetV1c', **{TINY!r})\n")
    rc = main(["flops", str(config), "--shape", "32", "48", "--out-dir", str(tmp_path)])
    assert rc == 0, capsys.readouterr().err
    data = json.loads((tmp_path / "flops.json").read_text())
    torch.manual_seed(0)
    expected = count_flops(SparseResNetV1c(**TINY), (32, 48))
    assert data["dense"]["head"] == 0
    assert data["dense"]["backbone"] == pytest.approx(expected.backbone_dense)
    assert len(data["blocks"]) == 16


SHIPPED_CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.py") if "_base_" not in p.parts)
DETECTION_PAPER_CONFIGS = sorted((REPO / "configs/faster_rcnn_dcn").glob("*.py")) + sorted(
    (REPO / "configs/sparse_faster_rcnn").glob("*.py"))


@pytest.fixture(scope="module")
def shipped() -> dict[Path, Config]:
    return {path: Config.fromfile(path) for path in SHIPPED_CONFIGS}


def test_every_shipped_config_saves_checkpoints_atomically(shipped) -> None:
    """docs/checkpoints.md: every config writes checkpoints with AtomicCheckpointHook and plain,
    digested content with SafeCheckpointHook (the CPU detection config used mmengine's
    CheckpointHook, which deletes the old checkpoint before writing the new one)."""
    assert len(shipped) > 50
    for path, cfg in shipped.items():
        assert cfg.default_hooks.checkpoint.type == "AtomicCheckpointHook", path.name
        assert "SafeCheckpointHook" in [h["type"] for h in cfg.custom_hooks], path.name


@pytest.mark.parametrize("path", DETECTION_PAPER_CONFIGS, ids=lambda p: p.name)
def test_paper_detection_configs_follow_the_authors(path: Path, shipped) -> None:
    """The authors' mmdetection configs: only the stem frozen, ImageNet weights from
    torchvision (mmdet's for ResNeXt), RoIAlign with 2 samples per bin, no anchors across the
    border, gradients clipped at norm 35."""
    cfg = shipped[path]
    backbone = cfg.model.backbone
    assert backbone.frozen_stages == 0 and backbone.norm_eval is True
    expected = ("open-mmlab://resnext101_32x4d" if backbone.type == "SparseDetResNeXt"
                else f"torchvision://resnet{backbone.depth}")
    assert backbone.init_cfg == dict(type="Pretrained", checkpoint=expected)
    assert cfg.model.roi_head.bbox_roi_extractor.roi_layer.sampling_ratio == 2
    assert cfg.model.train_cfg.rpn.allowed_border == 0
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=35, norm_type=2)
    # mmdet 3's L1 box losses (docs/detection.md says why)
    assert cfg.model.rpn_head.loss_bbox.type == cfg.model.roi_head.bbox_head.loss_bbox.type \
        == "L1Loss"


def test_training_a_frozen_backbone_without_pretrained_weights_is_warned_about(shipped) -> None:
    from mmdet.registry import MODELS as DET_MODELS

    from seg_sparse.engine.pretrained_check import frozen_without_pretrained

    init_default_scope("mmdet")
    cfg = shipped[REPO / "configs/sparse_faster_rcnn/sparse-faster-rcnn_r50-dcn_fpn_8xb1-1x_"
                         "coco_w0.1.py"]
    backbone_cfg = dict(cfg.model.backbone, base_channels=8)
    model = torch.nn.Module()
    model.backbone = DET_MODELS.build(backbone_cfg)  # building downloads nothing
    assert frozen_without_pretrained(model, None) is None  # Pretrained init_cfg
    model.backbone = DET_MODELS.build(dict(backbone_cfg, init_cfg=None))
    message = frozen_without_pretrained(model, None)
    assert message.startswith("TRAINING WITHOUT PRETRAINED WEIGHTS: model.backbone has no "
                              "Pretrained init_cfg and there is no load_from, so the stem "
                              "(frozen_stages=0) is never trained and BatchNorm keeps its "
                              "initial statistics (norm_eval=True): they stay at their random "
                              "initialisation for the whole run.")
    assert frozen_without_pretrained(model, "work_dirs/x/epoch_12.pth") is None
    model.backbone = DET_MODELS.build(dict(backbone_cfg, init_cfg=None, frozen_stages=-1,
                                           norm_eval=False))
    assert frozen_without_pretrained(model, None) is None  # from scratch on purpose
