"""Synthetic Cityscapes generator: layout, determinism, label consistency, mmseg / official eval."""

from __future__ import annotations

import json
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import name2label
from PIL import Image

import seg_sparse  # noqa: F401  (installs the mmcv fallback before mmseg imports)
from seg_sparse.data import generate_synthetic_cityscapes
from seg_sparse.data.cs_labels import color_lut, instance_label_ids, train_id_lut
from seg_sparse.data.synthetic import main

H, W = 128, 256
NUM_TRAIN, NUM_VAL = 4, 2
GT_SUFFIXES = ("_gtFine_labelIds.png", "_gtFine_labelTrainIds.png", "_gtFine_instanceIds.png",
               "_gtFine_color.png", "_gtFine_polygons.json")
STEM = re.compile(r"^[a-z]+_\d{6}_\d{6}$")


def _generate(root: Path, **kwargs) -> dict:
    args = dict(num_train=NUM_TRAIN, num_val=NUM_VAL, height=H, width=W, seed=3,
                show_progress=False)
    args.update(kwargs)
    return generate_synthetic_cityscapes(root, **args)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synthetic") / "cityscapes"
    return root, _generate(root)


def _stems(root: Path, split: str) -> list[tuple[str, str]]:
    """(city, stem) of every image of a split."""
    return sorted((p.parent.name, p.name[:-len("_leftImg8bit.png")])
                  for p in (root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))


def _gt(root: Path, split: str, city: str, stem: str, suffix: str) -> np.ndarray:
    return np.array(Image.open(root / "gtFine" / split / city / f"{stem}{suffix}"))


def _all_samples(root: Path):
    for split in ("train", "val"):
        for city, stem in _stems(root, split):
            yield split, city, stem


def test_layout_and_file_names_are_cityscapes(dataset: tuple[Path, dict]) -> None:
    root, summary = dataset
    assert summary["splits"] == {"train": NUM_TRAIN, "val": NUM_VAL}
    assert summary["num_images"] == NUM_TRAIN + NUM_VAL
    assert summary["root"] == str(root)
    assert sorted(p.name for p in root.iterdir()) == ["gtFine", "leftImg8bit"]
    for split, count in (("train", NUM_TRAIN), ("val", NUM_VAL)):
        stems = _stems(root, split)
        assert len(stems) == count
        assert {city for city, _ in stems} == set(summary["cities"][split])
        expected = set()
        for city, stem in stems:
            assert STEM.match(stem) and stem.startswith(f"{city}_"), stem
            expected |= {f"{city}/{stem}{suffix}" for suffix in GT_SUFFIXES}
        written = {f"{p.parent.name}/{p.name}" for p in (root / "gtFine" / split).glob("*/*")}
        assert written == expected
    # the official default cities, train and val disjoint
    assert summary["cities"]["train"] == ["aachen", "bochum", "bremen"]
    assert summary["cities"]["val"] == ["frankfurt", "lindau"]


def test_file_formats(dataset: tuple[Path, dict]) -> None:
    root, _ = dataset
    split, city, stem = next(_all_samples(root))
    img = Image.open(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
    assert (img.mode, img.size) == ("RGB", (W, H))
    modes = {suffix: Image.open(root / "gtFine" / split / city / f"{stem}{suffix}").mode
             for suffix in GT_SUFFIXES[:4]}
    assert modes["_gtFine_labelIds.png"] == "L"
    assert modes["_gtFine_labelTrainIds.png"] == "L"
    assert modes["_gtFine_instanceIds.png"] in ("I;16", "I")
    assert modes["_gtFine_color.png"] == "RGBA"


def test_label_maps_agree_with_each_other(dataset: tuple[Path, dict]) -> None:
    root, summary = dataset
    instance_ids = sorted(instance_label_ids())
    pixels = np.zeros(256, np.int64)
    for split, city, stem in _all_samples(root):
        label_ids = _gt(root, split, city, stem, "_gtFine_labelIds.png")
        train_ids = _gt(root, split, city, stem, "_gtFine_labelTrainIds.png")
        color = _gt(root, split, city, stem, "_gtFine_color.png")
        inst = _gt(root, split, city, stem, "_gtFine_instanceIds.png").astype(np.int64)
        assert label_ids.shape == train_ids.shape == inst.shape == (H, W)
        np.testing.assert_array_equal(train_ids, train_id_lut()[label_ids])
        np.testing.assert_array_equal(color[..., :3], color_lut()[label_ids])
        assert (color[..., 3] == 255).all()
        assert set(np.unique(train_ids)) <= set(range(19)) | {255}
        # instances: labelId * 1000 + index for cars / people, plain labelId elsewhere
        is_instance = np.isin(label_ids, instance_ids)
        assert (inst[is_instance] >= 1000).all()
        np.testing.assert_array_equal(inst[is_instance] // 1000, label_ids[is_instance])
        np.testing.assert_array_equal(inst[~is_instance], label_ids[~is_instance])
        with open(root / "gtFine" / split / city / f"{stem}_gtFine_polygons.json") as f:
            objects = json.load(f)["objects"]
        for name in ("car", "person"):
            n_polygons = sum(o["label"] == name for o in objects)
            ids = np.unique(inst[label_ids == name2label[name].id])
            assert set(ids - name2label[name].id * 1000) <= set(range(n_polygons))
        pixels += np.bincount(train_ids.ravel(), minlength=256)
    assert summary["train_id_pixels"] == {i: int(n) for i, n in enumerate(pixels) if n}


def test_scenes_hold_many_classes(dataset: tuple[Path, dict]) -> None:
    root, summary = dataset
    present = set(summary["train_id_pixels"]) - {255}
    # road, sidewalk, building, vegetation, sky, person, car are in every dataset of this size
    assert {0, 1, 2, 8, 10, 11, 13} <= present
    assert len(present) >= 9
    for split, city, stem in _all_samples(root):
        train_ids = _gt(root, split, city, stem, "_gtFine_labelTrainIds.png")
        fractions = np.bincount(train_ids.ravel(), minlength=256) / train_ids.size
        assert (fractions[:19] > 0).sum() >= 5, stem
        assert fractions.max() < 0.7, stem
        # classes have their own colours but images are textured, not flat label maps
        img = np.array(Image.open(root / "leftImg8bit" / split / city /
                                  f"{stem}_leftImg8bit.png")).astype(np.float64)
        road, sky = img[train_ids == 0], img[train_ids == 10]
        assert road.std(axis=0).min() > 2.0
        if len(sky):
            assert np.abs(road.mean(axis=0) - sky.mean(axis=0)).max() > 25


def test_polygons_reproduce_label_ids(dataset: tuple[Path, dict]) -> None:
    """The JSON is valid Cityscapes: the official rasteriser redraws the labelIds exactly."""
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.preparation.json2labelImg import createLabelImage

    root, _ = dataset
    for split, city, stem in _all_samples(root):
        path = root / "gtFine" / split / city / f"{stem}_gtFine_polygons.json"
        with open(path) as f:
            content = json.load(f)
        assert (content["imgHeight"], content["imgWidth"]) == (H, W)
        for obj in content["objects"]:
            assert obj["label"] in name2label
            pts = np.asarray(obj["polygon"])
            assert pts.ndim == 2 and pts.shape[1] == 2 and len(pts) >= 3
            assert pts.dtype.kind == "i"
            assert (pts >= 0).all() and (pts[:, 0] < W).all() and (pts[:, 1] < H).all()
        ann = Annotation()
        ann.fromJsonFile(str(path))
        redrawn = np.array(createLabelImage(ann, "ids"))
        np.testing.assert_array_equal(redrawn, _gt(root, split, city, stem,
                                                   "_gtFine_labelIds.png"))


def _read_all(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_same_seed_gives_identical_bytes(dataset: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = dataset
    _generate(tmp_path / "again")
    assert _read_all(tmp_path / "again") == _read_all(root)
    # a sample depends only on (seed, split, index), not on how many are generated
    _generate(tmp_path / "fewer", num_train=2, num_val=0)
    fewer = _read_all(tmp_path / "fewer")
    full = _read_all(root)
    assert fewer and all(full[name] == data for name, data in fewer.items())
    _generate(tmp_path / "other", num_train=1, num_val=0, seed=4)
    other = _read_all(tmp_path / "other")
    image = next(name for name in other if name.endswith("_leftImg8bit.png"))
    assert other[image] != full[image]


def test_rerun_in_place_is_allowed_but_stale_files_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _generate(root, num_train=3, num_val=1)
    _generate(root, num_train=3, num_val=1)  # same files: fine
    with pytest.raises(FileExistsError, match="would not write"):
        _generate(root, num_train=2, num_val=1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="file"):
        _generate(tmp_path / "file")


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(num_train=-1), ValueError, "num_train"),
    (dict(num_train=0, num_val=0), ValueError, "at least 1"),
    (dict(height=16), ValueError, "height"),
    (dict(width=100_000), ValueError, "width"),
    (dict(height=64.0), TypeError, "height"),
    (dict(num_val=True), TypeError, "num_val"),
    (dict(seed=-3), ValueError, "seed"),
    (dict(cities={"test": ["ulm"]}), ValueError, "test"),
    (dict(cities={"train": ["bad_name"]}), ValueError, "bad_name"),
    (dict(cities={"val": []}), ValueError, "empty"),
])
def test_bad_arguments_are_named(tmp_path: Path, kwargs: dict, error: type,
                                 match: str) -> None:
    with pytest.raises(error, match=match):
        _generate(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "cli"
    args = [str(root), "--num-train", "1", "--num-val", "1", "--height", "64", "--width", "128",
            "--train-cities", "ulm", "--no-progress"]
    assert main(args) == 0
    assert "wrote 2 samples" in capsys.readouterr().out
    assert (root / "leftImg8bit/train/ulm/ulm_000000_000019_leftImg8bit.png").is_file()
    assert (root / "gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_color.png").is_file()
    assert main([str(tmp_path / "bad"), "--height", "8", "--no-progress"]) == 2
    assert "height" in capsys.readouterr().err
    # the thin script in data_tools/ is the same command, with an example in its help
    script = Path(__file__).resolve().parents[1] / "data_tools/generate_synthetic_cityscapes.py"
    old_argv = sys.argv
    sys.argv = [str(script), "--help"]
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = old_argv
    assert exit_info.value.code == 0
    assert "example:" in capsys.readouterr().out


def test_mmseg_cityscapes_dataset_loads_generated_root(dataset: tuple[Path, dict]) -> None:
    from mmcv.transforms import LoadImageFromFile
    from mmseg.datasets import CityscapesDataset
    from mmseg.datasets.transforms import LoadAnnotations

    root, _ = dataset
    for split, count in (("train", NUM_TRAIN), ("val", NUM_VAL)):
        ds = CityscapesDataset(
            data_root=str(root),
            data_prefix=dict(img_path=f"leftImg8bit/{split}", seg_map_path=f"gtFine/{split}"),
            pipeline=[LoadImageFromFile(), LoadAnnotations()])
        assert len(ds) == count
    sample = ds[0]
    assert sample["img"].shape == (H, W, 3)
    assert sample["gt_seg_map"].shape == (H, W)
    assert set(np.unique(sample["gt_seg_map"])) <= set(range(19)) | {255}
    assert sample["seg_map_path"].endswith("_gtFine_labelTrainIds.png")


@pytest.mark.filterwarnings("ignore:`in1d` is deprecated:DeprecationWarning")
def test_official_evaluation_runs_on_generated_ground_truth(dataset: tuple[Path, dict],
                                                            tmp_path: Path) -> None:
    """cityscapesscripts' pixel-level evaluation (with iIoU, reading instanceIds) scores the
    ground truth as a perfect prediction."""
    import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as cs_eval

    root, _ = dataset
    gts = sorted(str(p) for p in (root / "gtFine/val").glob("*/*_gtFine_labelIds.png"))
    preds = []
    for gt in gts:
        pred = tmp_path / Path(gt).name.replace("_gtFine_labelIds", "_pred")
        pred.write_bytes(Path(gt).read_bytes())
        preds.append(str(pred))
    args = cs_eval.args
    saved = dict(vars(args))
    try:
        args.evalInstLevelScore, args.evalPixelAccuracy = True, True
        args.JSONOutput, args.quiet = False, True
        args.predictionPath = str(tmp_path)
        results = cs_eval.evaluateImgLists(preds, gts, args)
    finally:
        vars(args).update(saved)
    assert results["averageScoreClasses"] == pytest.approx(1.0)
    assert results["averageScoreInstClasses"] == pytest.approx(1.0)
