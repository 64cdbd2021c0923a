"""Shared fixtures for the detection tests: a tiny synthetic COCO set and one trained detector.

Load them with ``pytest_plugins = ("det_support",)``. The detector is the CPU detection config
shrunk to base width 8 and 64x128 images, trained for 2 iterations by mmdet's own
``tools/train.py`` in a subprocess (once per pytest session).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DENSE_CPU = REPO / "configs/cpu/faster-rcnn_r50-dcn-w16_fpn_1xb2-300i_synthcoco-128x256.py"
SPARSE_CPU = DENSE_CPU.with_name(
    "sparse-faster-rcnn_r50-dcn-w16_fpn_1xb2-300i_synthcoco-128x256_w0.1.py")
HEIGHT, WIDTH = 64, 128

SMALL = """
_base_ = [{base!r}]
_root = {root!r}
model = dict(
    backbone=dict(base_channels=8),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=16),
    rpn_head=dict(in_channels=16, feat_channels=16),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=16),
                  bbox_head=dict(in_channels=16, fc_out_channels=32)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=200, max_per_img=100),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100)))
_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 64), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')]
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 64), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
train_dataloader = dict(batch_size=1, dataset=dict(data_root=_root, pipeline=_train_pipeline))
val_dataloader = dict(dataset=dict(data_root=_root, pipeline=_test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=_root + '/annotations/instances_val2017.json')
test_evaluator = val_evaluator
train_cfg = dict(max_iters=2, val_interval=2)
param_scheduler = [dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=2)]
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
"""


def small_config(directory: Path, data_root: Path, sparse: bool = True) -> Path:
    """The tiny detector config (sparse or its dense twin) reading ``data_root``."""
    path = directory / ("sparse_det_small.py" if sparse else "dense_det_small.py")
    path.write_text(SMALL.format(base=str(SPARSE_CPU if sparse else DENSE_CPU),
                                 root=str(data_root)))
    return path


def run_tool(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python ARGV`` in a subprocess (mmdet tools keep global state: one process each)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="session")
def synthcoco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 train / 2 val synthetic street scenes of 64x128 in the COCO layout."""
    from seg_sparse.data.synthetic_coco import generate_synthetic_coco

    root = tmp_path_factory.mktemp("synthcoco")
    generate_synthetic_coco(root, num_train=3, num_val=2, height=HEIGHT, width=WIDTH, seed=0,
                            show_progress=False)
    return root


@dataclass
class TrainedDetector:
    root: Path
    config: Path
    work_dir: Path
    checkpoint: Path
    log: str


@pytest.fixture(scope="session")
def trained_detector(synthcoco: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> TrainedDetector:
    """mmdet's unchanged ``tools/train.py`` on the tiny sparse detector, 2 iterations + val."""
    from seg_sparse.mmdet_tools import tool_path

    work = tmp_path_factory.mktemp("det_train")
    config = small_config(work, synthcoco)
    result = run_tool(str(tool_path("train")), str(config), "--work-dir", str(work / "run"),
                      cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    return TrainedDetector(synthcoco, config, work / "run", work / "run" / "iter_2.pth",
                           result.stdout + result.stderr)
