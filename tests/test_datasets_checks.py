"""Validating dataset / transforms: bad files are named, bad label values are refused."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import seg_sparse  # noqa: F401  (installs the mmcv fallback before mmseg imports)
from seg_sparse.datasets import (
    CheckedCityscapesDataset,
    CheckedLoadAnnotations,
    CheckedLoadImageFromFile,
)
from seg_sparse.datasets.transforms import DataDecodeError, InvalidLabelError, SizeMismatchError


def _write_pair(root: Path, split: str, name: str, label: np.ndarray) -> tuple[Path, Path]:
    img_dir = root / "leftImg8bit" / split / "city"
    ann_dir = root / "gtFine" / split / "city"
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    img = img_dir / f"{name}_leftImg8bit.png"
    ann = ann_dir / f"{name}_gtFine_labelTrainIds.png"
    cv2.imwrite(str(img), np.full((*label.shape, 3), 100, np.uint8))
    cv2.imwrite(str(ann), label.astype(np.uint8))
    return img, ann


def _ann_results(path: Path) -> dict:
    return dict(seg_map_path=str(path), reduce_zero_label=False, seg_fields=[])


def test_valid_label_map_loads(tmp_path: Path) -> None:
    label = np.array([[0, 18], [255, 7]], np.uint8)
    _, ann = _write_pair(tmp_path, "train", "city_000000_000000", label)
    out = CheckedLoadAnnotations(num_classes=19).transform(_ann_results(ann))
    np.testing.assert_array_equal(out["gt_seg_map"], label)


def test_label_values_outside_classes_are_refused(tmp_path: Path) -> None:
    label = np.array([[0, 26], [33, 7]], np.uint8)  # labelIds, not trainIds
    _, ann = _write_pair(tmp_path, "train", "city_000000_000000", label)
    with pytest.raises(InvalidLabelError, match=r"\[26, 33\]") as err:
        CheckedLoadAnnotations(num_classes=19).transform(_ann_results(ann))
    assert str(ann) in str(err.value)


def test_undecodable_label_map_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "broken_gtFine_labelTrainIds.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataDecodeError, match="broken_gtFine_labelTrainIds.png"):
        CheckedLoadAnnotations().transform(_ann_results(bad))


def test_undecodable_image_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "broken_leftImg8bit.png"
    bad.write_bytes(b"\x89PNG truncated")
    with pytest.raises(DataDecodeError, match="broken_leftImg8bit.png"):
        CheckedLoadImageFromFile().transform(dict(img_path=str(bad)))


def _dataset(root: Path, split: str = "train") -> CheckedCityscapesDataset:
    return CheckedCityscapesDataset(
        data_root=str(root),
        data_prefix=dict(img_path=f"leftImg8bit/{split}", seg_map_path=f"gtFine/{split}"),
        pipeline=[],
    )


def test_dataset_finds_pairs(tmp_path: Path) -> None:
    for i in range(3):
        _write_pair(tmp_path, "train", f"city_000000_00000{i}", np.zeros((4, 8), np.uint8))
    assert len(_dataset(tmp_path)) == 3


def test_missing_root_names_the_root(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        _dataset(missing)


def test_missing_split_names_the_folder(tmp_path: Path) -> None:
    _write_pair(tmp_path, "train", "city_000000_000000", np.zeros((4, 8), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"leftImg8bit/val"):
        _dataset(tmp_path, "val")


def test_missing_label_map_is_reported(tmp_path: Path) -> None:
    _, ann = _write_pair(tmp_path, "train", "city_000000_000000", np.zeros((4, 8), np.uint8))
    ann.unlink()
    with pytest.raises(FileNotFoundError, match="labelTrainIds"):
        _dataset(tmp_path)


def test_empty_image_is_named_not_a_raw_opencv_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty_leftImg8bit.png"
    empty.write_bytes(b"")
    with pytest.raises(DataDecodeError, match=r"empty_leftImg8bit.png': the file is empty"):
        CheckedLoadImageFromFile().transform(dict(img_path=str(empty)))


def test_image_and_label_of_different_sizes_name_both_files(tmp_path: Path) -> None:
    img, ann = _write_pair(tmp_path, "val", "city_000000_000000", np.zeros((4, 6), np.uint8))
    cv2.imwrite(str(img), np.zeros((4, 8, 3), np.uint8))
    results = CheckedLoadImageFromFile().transform(dict(img_path=str(img)))
    with pytest.raises(SizeMismatchError) as err:
        CheckedLoadAnnotations().transform({**results, **_ann_results(ann)})
    assert f"image '{img}' is 8x4" in str(err.value) and f"'{ann}' is 6x4" in str(err.value)


@pytest.mark.parametrize("damage", ["empty image", "empty label", "size mismatch"])
def test_dataset_checks_file_headers_before_anything_runs(tmp_path: Path, damage: str) -> None:
    _write_pair(tmp_path, "val", "city_000000_000000", np.zeros((4, 6), np.uint8))
    img, ann = _write_pair(tmp_path, "val", "city_000000_000001", np.zeros((4, 6), np.uint8))
    if damage == "empty image":
        img.write_bytes(b"")
    elif damage == "empty label":
        ann.write_bytes(b"")
    else:
        cv2.imwrite(str(ann), np.zeros((5, 6), np.uint8))
    expected = {"empty image": (DataDecodeError, [img]), "empty label": (DataDecodeError, [ann]),
                "size mismatch": (SizeMismatchError, [img, ann])}[damage]
    with pytest.raises(expected[0]) as err:
        CheckedCityscapesDataset(
            data_root=str(tmp_path), pipeline=[],
            data_prefix=dict(img_path="leftImg8bit/val", seg_map_path="gtFine/val"))
    assert all(str(path) in str(err.value) for path in expected[1])


def test_the_datasets_build_the_stock_loaders_of_a_config_as_the_checked_ones(tmp_path: Path):
    """Configs name mmseg's LoadImageFromFile / LoadAnnotations (what mmseg's inference APIs
    strip and swap); the datasets still load through the checks."""
    from mmengine.registry import init_default_scope

    from seg_sparse.datasets import CheckedCocoDataset

    init_default_scope("mmseg")
    # 3 is a Cityscapes class outside the 3 below (mmseg maps it to 255), 25 none at all
    _, ann = _write_pair(tmp_path, "val", "city_000000_000000", np.array([[0, 1], [3, 25]]))
    stock = [dict(type="LoadImageFromFile"), dict(type="mmseg.LoadAnnotations"),
             dict(type="PackSegInputs")]
    dataset = CheckedCityscapesDataset(
        data_root=str(tmp_path), pipeline=stock,
        metainfo=dict(classes=("road", "sidewalk", "building")),
        data_prefix=dict(img_path="leftImg8bit/val", seg_map_path="gtFine/val"))
    load_image, load_labels, _ = dataset.pipeline.transforms
    assert type(load_image) is CheckedLoadImageFromFile
    assert type(load_labels) is CheckedLoadAnnotations
    assert (load_labels.num_classes, load_labels.ignore_index) == (3, 255)
    with pytest.raises(InvalidLabelError, match=r"values \[25\] outside \{0..2, 255\}") as err:
        dataset[0]
    assert str(ann) in str(err.value)
    tta = CheckedCityscapesDataset(
        data_root=str(tmp_path), data_prefix=dict(img_path="leftImg8bit/val",
                                                  seg_map_path="gtFine/val"),
        pipeline=[dict(type="LoadImageFromFile"), dict(type="TestTimeAug", transforms=[
            [dict(type="RandomFlip", prob=p) for p in (0.0, 1.0)],
            [dict(type="LoadAnnotations")], [dict(type="PackSegInputs")]])])
    with pytest.raises(InvalidLabelError, match=r"values \[25\]"):  # checked inside TTA too
        tta[0]
    init_default_scope("mmdet")
    coco = CheckedCocoDataset(data_root=str(tmp_path), lazy_init=True,
                              pipeline=[dict(type="LoadImageFromFile", to_float32=True)])
    (loader,) = coco.pipeline.transforms
    assert type(loader) is CheckedLoadImageFromFile and loader.to_float32
