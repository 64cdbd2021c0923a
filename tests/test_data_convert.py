"""Cityscapes polygons -> labelTrainIds converter: values, skip-existing, errors, CLI."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seg_sparse.data import convert_cityscapes
from seg_sparse.data.cityscapes_convert import main
from seg_sparse.data.synthetic import generate_synthetic_cityscapes

TRAIN_IDS = "_gtFine_labelTrainIds.png"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "cityscapes"
    generate_synthetic_cityscapes(root, num_train=3, num_val=2, height=96, width=192, seed=1,
                                  show_progress=False)
    return root


def _label_maps(root: Path) -> dict[Path, np.ndarray]:
    return {p: np.array(Image.open(p)) for p in sorted(root.glob(f"gtFine/*/*/*{TRAIN_IDS}"))}


@pytest.mark.parametrize("nproc", [1, 2])
def test_converter_reproduces_generated_train_ids(root: Path, nproc: int) -> None:
    written = _label_maps(root)
    assert len(written) == 5
    for path in written:
        path.unlink()
    assert convert_cityscapes(root, nproc=nproc, show_progress=False) == 5
    converted = _label_maps(root)
    assert converted.keys() == written.keys()
    for path, expected in written.items():
        np.testing.assert_array_equal(converted[path], expected, err_msg=str(path))
    assert not list(root.rglob("*.tmp.png"))


def test_existing_label_maps_are_skipped_unless_overwrite(root: Path) -> None:
    maps = _label_maps(root)
    first = next(iter(maps))
    Image.fromarray(np.zeros_like(maps[first])).save(first)
    assert convert_cityscapes(root, nproc=1, show_progress=False) == 0
    assert (np.array(Image.open(first)) == 0).all()  # kept as it was
    last = list(maps)[-1]
    last.unlink()
    assert convert_cityscapes(root, nproc=1, show_progress=False) == 1
    np.testing.assert_array_equal(np.array(Image.open(last)), maps[last])
    assert convert_cityscapes(root, nproc=2, overwrite=True, show_progress=False) == 5
    np.testing.assert_array_equal(np.array(Image.open(first)), maps[first])


def test_groups_and_license_plates_follow_cityscapes_rules(tmp_path: Path) -> None:
    """'cargroup' is drawn as car (trainId 13); 'license plate' (id -1) is not drawn."""
    city = tmp_path / "gtFine" / "val" / "ulm"
    city.mkdir(parents=True)
    polygons = {"imgHeight": 6, "imgWidth": 8, "objects": [
        {"label": "road", "polygon": [[0, 0], [7, 0], [7, 5], [0, 5]]},
        {"label": "cargroup", "polygon": [[2, 1], [5, 1], [5, 4], [2, 4]]},
        {"label": "license plate", "polygon": [[3, 2], [4, 2], [4, 3], [3, 3]]},
    ]}
    (city / "ulm_000000_000019_gtFine_polygons.json").write_text(json.dumps(polygons))
    assert convert_cityscapes(tmp_path, nproc=1, show_progress=False) == 1
    out = np.array(Image.open(city / f"ulm_000000_000019{TRAIN_IDS}"))
    expected = np.zeros((6, 8), np.uint8)
    expected[1:5, 2:6] = 13
    np.testing.assert_array_equal(out, expected)


def test_wrong_root_fails_clearly(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        convert_cityscapes(missing, show_progress=False)
    (tmp_path / "leftImg8bit").mkdir()
    with pytest.raises(FileNotFoundError, match="no gtFine directory"):
        convert_cityscapes(tmp_path, show_progress=False)
    (tmp_path / "gtFine" / "train" / "ulm").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="_gtFine_polygons.json"):
        convert_cityscapes(tmp_path, show_progress=False)
    with pytest.raises(ValueError, match="nproc"):
        convert_cityscapes(tmp_path, nproc=0, show_progress=False)


@pytest.mark.parametrize("nproc", [1, 2])
def test_bad_polygon_file_is_named(root: Path, nproc: int) -> None:
    bad = next(root.glob("gtFine/train/*/*_gtFine_polygons.json"))
    content = json.loads(bad.read_text())
    content["objects"][0]["label"] = "spaceship"
    bad.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"(?s)cannot convert .*polygons\.json.*'spaceship'"):
        convert_cityscapes(root, nproc=nproc, overwrite=True, show_progress=False)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=bad.name):
        convert_cityscapes(root, nproc=nproc, overwrite=True, show_progress=False)
    assert not list(root.rglob("*.tmp.png"))


def test_command_line(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for path in root.glob(f"gtFine/val/*/*{TRAIN_IDS}"):
        path.unlink()
    assert main([str(root), "--nproc", "1", "--no-progress"]) == 0
    assert "wrote 2 " in capsys.readouterr().out
    assert main([str(tmp_path / "nowhere"), "--no-progress"]) == 2
    assert "nowhere" in capsys.readouterr().err
    script = Path(__file__).resolve().parents[1] / "data_tools" / "cityscapes.py"
    old_argv = sys.argv
    sys.argv = [str(script), "--help"]
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = old_argv
    assert exit_info.value.code == 0
    assert "example:" in capsys.readouterr().out
