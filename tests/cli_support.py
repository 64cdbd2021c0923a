"""Shared fixtures for the CLI / Runner tests: tiny synthetic data and one trained checkpoint.

Load them in a test module with ``pytest_plugins = ("cli_support",)`` so
the session-scoped data and the 2-iteration training run are made once per pytest session.
"""

from __future__ import annotations

import itertools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CPU_CONFIG = str(REPO / "configs/cpu/fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256.py")
HEIGHT, WIDTH = 64, 128

# The CPU config shrunk to 64x128 images, batch 1, 2 iterations (validation at the end).
TINY_OPTIONS = [
    "train_cfg.max_iters=2",
    "train_cfg.val_interval=2",
    "param_scheduler.0.end=2",
    "default_hooks.checkpoint.interval=2",
    "default_hooks.logger.interval=1",
    "train_dataloader.batch_size=1",
    f"train_dataloader.dataset.pipeline.2.scale=({WIDTH * 2},{HEIGHT})",
    f"train_dataloader.dataset.pipeline.3.crop_size=({HEIGHT},{WIDTH})",
    f"model.data_preprocessor.size=({HEIGHT},{WIDTH})",
    f"val_dataloader.dataset.pipeline.1.scale=({WIDTH},{HEIGHT})",
    f"test_dataloader.dataset.pipeline.1.scale=({WIDTH},{HEIGHT})",
]
_run_ids = itertools.count()


def unique_name(prefix: str) -> list[str]:
    """cfg-options giving each in-process Runner its own logger / message hub and visualizer
    instance (else a second run logs its scalars into the first run's folder)."""
    name = f"{prefix}_{os.getpid()}_{next(_run_ids)}"
    return [f"experiment_name={name}", f"visualizer.name={name}"]


def seg_sparse(*argv: str) -> int:
    """Run ``seg-sparse ARGV`` in-process."""
    from seg_sparse.cli.main import main

    return main(list(argv))


@pytest.fixture(scope="session")
def synthcity(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 train / 2 val synthetic scenes of 64x128 in the Cityscapes layout."""
    from seg_sparse.data.synthetic import generate_synthetic_cityscapes

    root = tmp_path_factory.mktemp("synthcity")
    generate_synthetic_cityscapes(root, num_train=4, num_val=2, height=HEIGHT, width=WIDTH,
                                  seed=0, show_progress=False)
    return root


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@dataclass
class TrainedRun:
    root: Path
    work_dir: Path
    checkpoint: Path


@pytest.fixture(scope="session")
def trained(synthcity: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """``seg-sparse train`` of the tiny CPU config for 2 iterations."""
    work_dir = tmp_path_factory.mktemp("train")
    rc = seg_sparse("train", CPU_CONFIG, "--work-dir", str(work_dir), "--data-root",
                    str(synthcity), "--cfg-options", *TINY_OPTIONS, *unique_name("train"))
    assert rc == 0
    return TrainedRun(synthcity, work_dir, work_dir / "iter_2.pth")
