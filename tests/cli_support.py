"""Helpers for the CLI / Runner tests: the tiny test config, in-process `seg-sparse`, names.

The fixtures built from them (generated data, a trained checkpoint) are in ``conftest.py``.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CPU_CONFIG = str(REPO / "configs/cpu/fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256.py")
SPARSE_CPU_CONFIG = str(
    REPO / "configs/cpu/sparse-fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256_w1.0.py")
HEIGHT, WIDTH = 64, 128

# A CPU config shrunk to 64x128 images and batch 1. The pipelines are restated whole, so no
# step is addressed by its position in the list.
_TINY = """# {base} shrunk for tests: 64x128 images, batch 1, {iters} iteration(s), checkpoint and
# validation every {interval}.
_base_ = [{base!r}]
crop_size = ({height}, {width})
model = dict(data_preprocessor=dict(size=crop_size))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=({wide}, {height}), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({width}, {height}), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')]
train_dataloader = dict(batch_size=1, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters={iters}, val_interval={interval})
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end={iters},
                        by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval={interval}), logger=dict(interval=1))
"""
_run_ids = itertools.count()


def tiny_config(folder: Path, base: str = CPU_CONFIG, iters: int = 2,
                interval: int | None = None) -> str:
    """Write the tiny variant of ``base`` into ``folder``; returns its path."""
    path = Path(folder) / f"tiny{iters}_{Path(base).name}"
    path.write_text(_TINY.format(base=base, iters=iters, interval=interval or iters,
                                 height=HEIGHT, width=WIDTH, wide=2 * WIDTH))
    return str(path)


def unique_name(prefix: str) -> list[str]:
    """cfg-options giving each in-process Runner its own logger / message hub and visualizer
    instance (else a second run logs its scalars into the first run's folder)."""
    name = f"{prefix}_{os.getpid()}_{next(_run_ids)}"
    return [f"experiment_name={name}", f"visualizer.name={name}"]


def seg_sparse(*argv: str) -> int:
    """Run ``seg-sparse ARGV`` in-process."""
    from seg_sparse.cli.main import main

    return main(list(argv))


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
