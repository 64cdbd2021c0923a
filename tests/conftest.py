"""Fixtures shared by the test modules: generated data, the tiny config, a trained checkpoint.

Session-scoped, so the data and the 2-iteration training run are made once per pytest run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_support import HEIGHT, WIDTH, seg_sparse, tiny_config, unique_name


@pytest.fixture(scope="session")
def synthcity(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 train / 2 val synthetic scenes of 64x128 in the Cityscapes layout."""
    from seg_sparse.data.synthetic import generate_synthetic_cityscapes

    root = tmp_path_factory.mktemp("synthcity")
    generate_synthetic_cityscapes(root, num_train=4, num_val=2, height=HEIGHT, width=WIDTH,
                                  seed=0, show_progress=False)
    return root


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The dense CPU config at 64x128, batch 1, 2 iterations (``cli_support.tiny_config``)."""
    return tiny_config(tmp_path_factory.mktemp("tiny_config"))


@dataclass
class TrainedRun:
    root: Path
    work_dir: Path
    checkpoint: Path
    config: str  # the tiny config it was trained with


@pytest.fixture(scope="session")
def trained(synthcity: Path, tiny: str, tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """``seg-sparse train`` of the tiny config for 2 iterations."""
    work_dir = tmp_path_factory.mktemp("train")
    rc = seg_sparse("train", tiny, "--work-dir", str(work_dir), "--data-root", str(synthcity),
                    "--cfg-options", *unique_name("train"))
    assert rc == 0
    return TrainedRun(synthcity, work_dir, work_dir / "iter_2.pth", tiny)
