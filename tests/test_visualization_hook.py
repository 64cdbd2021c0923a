"""SparseVisualizationHook: densities as scalars and mask overlays as images, in the local and
the TensorBoard backends, enabled by the one config line of docs/visualization.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_support import SPARSE_CPU_CONFIG, seg_sparse, tiny_config, unique_name

pytest_plugins = ("det_support",)

#: The line docs/visualization.md tells users to add, and the backends to log to.
HOOK_LINE = "custom_hooks = _base_.custom_hooks + [dict(type='SparseVisualizationHook')]"
BACKENDS = ("visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), "
            "dict(type='TensorboardVisBackend')])")


def _config(folder: Path, hook_line: str = HOOK_LINE) -> str:
    tiny = tiny_config(folder, SPARSE_CPU_CONFIG, iters=2, interval=2)
    path = folder / "with_hook.py"
    path.write_text(f"_base_ = [{tiny!r}]\n{hook_line}\n{BACKENDS}\n")
    return str(path)


def _scalar_lines(vis_data: Path) -> list[dict]:
    return [json.loads(line) for line in (vis_data / "scalars.json").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained_with_hook(synthcity, tmp_path_factory):
    """2 iterations of the tiny sparse config, validated at iteration 2, with the hook."""
    pytest.importorskip("tensorboard")
    folder = tmp_path_factory.mktemp("vis_hook")
    work_dir = folder / "work"
    rc = seg_sparse("train", _config(folder), "--work-dir", str(work_dir),
                    "--data-root", str(synthcity), "--cfg-options", *unique_name("vis_hook"))
    assert rc == 0
    (vis_data,) = work_dir.glob("*/vis_data")
    return vis_data, synthcity


@pytest.mark.slow
def test_per_block_densities_reach_scalars_json(trained_with_hook):
    vis_data, _ = trained_with_hook
    lines = [line for line in _scalar_lines(vis_data) if "density/layer1.0/d1" in line]
    assert len(lines) == 1 and lines[0]["step"] == 2  # logged at the validation's iteration
    scalars = lines[0]
    blocks = {key.split("/")[1] for key in scalars if key.startswith("density/")}
    assert len(blocks) == 16 and {"layer1.0", "layer4.2"} <= blocks  # ResNet-50: 3+4+6+3
    for block in blocks:
        for mask in ("d1", "d2"):
            assert 0.0 < scalars[f"density/{block}/{mask}"] <= 1.0
    # the same figures as the validation metric's (rounded there to 4 digits)
    (val,) = [line for line in _scalar_lines(vis_data) if "mIoU" in line]
    assert val["step"] == 2 and 0.0 < val["density_mean"] <= 1.0
    mean = np.mean([scalars[f"density/{b}/{m}"] for b in blocks for m in ("d1", "d2")])
    assert mean == pytest.approx(val["density_mean"], abs=1e-4)


@pytest.mark.slow
def test_mask_overlay_of_the_fixed_image_is_written(trained_with_hook):
    vis_data, data_root = trained_with_hook
    first_val = sorted((data_root / "leftImg8bit/val").rglob("*.png"))[0]
    png = vis_data / "vis_image" / f"sampling_masks_{first_val.stem}_2.png"
    assert png.is_file()
    import mmcv

    picture = mmcv.imread(str(png), channel_order="rgb")
    assert picture.ndim == 3 and picture.shape[0] > 300 and picture.shape[1] > 600
    # amber-tinted (sampled) positions are in the picture: the masks were drawn
    amber = (picture[..., 0] > 150) & (picture[..., 2] < 120) & (picture[..., 1] > 100)
    assert amber.mean() > 0.01


@pytest.mark.slow
def test_tensorboard_event_file_holds_densities_and_image(trained_with_hook):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    vis_data, _ = trained_with_hook
    events = EventAccumulator(str(vis_data), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert "density/layer3.5/d2" in tags["scalars"] and "mIoU" in tags["scalars"]
    (point,) = events.Scalars("density/layer3.5/d2")
    assert point.step == 2 and 0.0 < point.value <= 1.0
    local = [line for line in _scalar_lines(vis_data) if "density/layer3.5/d2" in line][0]
    assert point.value == pytest.approx(local["density/layer3.5/d2"])
    (image_tag,) = [t for t in tags["images"] if t.startswith("sampling_masks_")]
    (image,) = events.Images(image_tag)
    assert image.step == 2 and image.width > 600


def test_density_scalars_names_and_bad_image_indices():
    from seg_sparse.engine import SparseVisualizationHook
    from seg_sparse.engine.visualization_hook import density_scalars

    assert density_scalars({"layer1.0": [0.5, 0.25]}, {"conv_cat": 0.75}) == {
        "density/layer1.0/d1": 0.5, "density/layer1.0/d2": 0.25,
        "head_density/conv_cat": 0.75}
    assert density_scalars(None, None) == {}
    with pytest.raises(ValueError, match="image_indices"):
        SparseVisualizationHook(image_indices=(-1,))


@pytest.mark.slow
def test_detection_test_run_logs_densities_and_boxes_with_masks(trained_detector, tmp_path):
    """The same line in a detection config, under `seg-sparse test` (step 0)."""
    config = tmp_path / "det_with_hook.py"
    config.write_text(f"_base_ = [{str(trained_detector.config)!r}]\n{HOOK_LINE}\n")
    work = tmp_path / "test"
    rc = seg_sparse("test", str(config), str(trained_detector.checkpoint), "--work-dir",
                    str(work), "--cfg-options", *unique_name("vis_hook_det"))
    assert rc == 0
    (vis_data,) = work.glob("*/vis_data")
    (line,) = [line for line in _scalar_lines(vis_data) if "density/layer1.0/d1" in line]
    assert line["step"] == 0 and 0.0 < line["density/layer4.2/d2"] <= 1.0
    (png,) = (vis_data / "vis_image").glob("sampling_masks_*_0.png")
    import mmcv

    assert mmcv.imread(str(png)).shape[1] > 600


@pytest.mark.slow
def test_image_index_beyond_the_dataset_is_one_line_exit_2(trained, tmp_path, capsys):
    config = tmp_path / "bad_index.py"
    config.write_text(f"_base_ = [{trained.config!r}]\ncustom_hooks = _base_.custom_hooks + "
                      "[dict(type='SparseVisualizationHook', image_indices=(0, 7))]\n")
    rc = seg_sparse("test", str(config), str(trained.checkpoint), "--work-dir",
                    str(tmp_path / "work"), "--data-root", str(trained.root),
                    "--cfg-options", *unique_name("vis_hook_bad"))
    assert rc == 2
    assert "image_indices [7] out of range for the 2 images" in capsys.readouterr().err
