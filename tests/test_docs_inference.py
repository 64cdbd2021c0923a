"""docs/inference.md's notebook code runs as written (on a demo-like folder) and does what the
text says."""

from __future__ import annotations

import seg_sparse  # noqa: F401, I001  # isort: skip  (mmcv.ops fallback before mmseg)
import re
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs/inference.md"
DEMO_CONFIG = REPO / "configs/cpu/sparse-fcn_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.slow
def test_the_inference_notebook_runs_as_written(tmp_path: Path, synthcity: Path,
                                                 monkeypatch: pytest.MonkeyPatch):
    """In a folder laid out like the repository after ``seg-sparse demo --out-dir demo_out``
    (the demo's sparse config with a checkpoint of random weights, synthetic scenes)."""
    import matplotlib
    from mmseg.apis import init_model
    from mmseg.datasets import CityscapesDataset

    matplotlib.use("Agg")
    (tmp_path / "configs").symlink_to(REPO / "configs")
    data = tmp_path / "demo_out/data/synthcity_128x256_train24_val8_seed0"
    data.parent.mkdir(parents=True)
    data.symlink_to(synthcity)
    checkpoint = tmp_path / "demo_out/work_dirs/sparse/iter_30.pth"
    checkpoint.parent.mkdir(parents=True)
    model = init_model(str(DEMO_CONFIG), device="cpu")
    meta = dict(classes=list(CityscapesDataset.METAINFO["classes"]),
                palette=[list(p) for p in CityscapesDataset.METAINFO["palette"]])
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=meta)), checkpoint)
    monkeypatch.chdir(tmp_path)

    blocks = python_blocks(DOC)
    assert len(blocks) == 4
    namespace: dict = {}
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), namespace)

    result = namespace["result"]
    assert list(result.masks) == ["layer1.2", "layer2.3", "layer3.5", "layer4.2"]
    assert result.head_masks == {}
    assert len(result.densities) == 16
    assert namespace["labels"].shape == (64, 128)
    assert tuple(result.prediction.sampling_masks.get("layer3.5.mask2").shape) == (16, 32)
    for figure in ("masks.png", "masks_figure.png"):
        assert (tmp_path / figure).stat().st_size > 10_000
    out = namespace["out"]
    scenes = sorted((synthcity / "leftImg8bit/val").rglob("*.png"))
    assert len(scenes) == 2
    assert len(out["sampling_masks"]) == len(out["sampling_densities"]) == 2
    assert sorted(p.name for p in (tmp_path / "inferred/vis").glob("*_masks.png")) == [
        f"{p.stem}_masks.png" for p in scenes]
