"""Fixtures shared by the test modules: generated data, the tiny config, a trained checkpoint.

Session-scoped, so the data and the 2-iteration training run are made once per pytest run.

Every test that trains (an mmengine Runner's ``train()`` in this process, or through a fixture
that does) is marked ``slow``, so ``-m "not slow"`` skips the end-to-end runs as the README
says: tests using a training fixture are marked here, and a guard fails any other test that
starts a training run without the mark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_support import HEIGHT, WIDTH, seg_sparse, tiny_config, unique_name
from mmengine.runner import Runner


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


#: Fixtures that train (here or in the modules that define them): their users are slow.
TRAINING_FIXTURES = frozenset({"trained", "toy_run", "trained_detector", "models",
                               "checkpoint_file", "tested"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _training_needs_the_slow_mark(request: pytest.FixtureRequest,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that trains without the ``slow`` mark fails, naming itself."""
    if request.node.get_closest_marker("slow") is not None:
        return
    def guarded(runner: Runner, *args, **kwargs):  # noqa: ANN202
        raise AssertionError(f"{request.node.nodeid} trains a model: mark it "
                             f"@pytest.mark.slow (or use a fixture in TRAINING_FIXTURES)")

    monkeypatch.setattr(Runner, "train", guarded)
