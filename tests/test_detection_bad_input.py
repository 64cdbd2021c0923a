"""Malformed COCO annotation files: a clear error naming the file and the entry, or (boxes of
non-positive size) skipped with a warning, as mmdet users expect."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import seg_sparse  # noqa: F401
from seg_sparse.datasets import BadAnnotationError, CheckedCocoDataset, check_coco_annotations
from seg_sparse.datasets import coco as coco_module

pytest_plugins = ("det_support",)


@pytest.fixture(scope="module")
def valid(synthcoco: Path) -> dict:
    return json.loads((synthcoco / "annotations/instances_val2017.json").read_text())


def write(tmp_path: Path, data) -> str:
    path = tmp_path / "instances_bad.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def broken(valid: dict, edit) -> dict:
    data = copy.deepcopy(valid)
    edit(data)
    return data


CASES = {
    "not json": ("{'images': [", r"is not valid JSON"),
    "top-level list": ([], r"holds a list, not a COCO object"),
    "no annotations": (lambda d: d.pop("annotations"), r"has no 'annotations' list"),
    "no categories": (lambda d: d.pop("categories"), r"has no 'categories' list"),
    "annotation without bbox": (lambda d: d["annotations"][1].pop("bbox"),
                                r"annotations\[1\] \(id 2\) has no 'bbox' key"),
    "annotation without area": (lambda d: d["annotations"][0].pop("area"),
                                r"annotations\[0\] \(id 1\) has no 'area' key"),
    "image without file_name": (lambda d: d["images"][1].pop("file_name"),
                                r"images\[1\] \(id 1000002\) has no 'file_name' key"),
    "unknown category": (lambda d: d["annotations"][2].update(category_id=91),
                         r"annotations\[2\] \(id 3\) has unknown category_id 91 "
                         r"\(categories: \[1, 2, 3, 4, 5\]\)"),
    "unknown image": (lambda d: d["annotations"][0].update(image_id=7),
                      r"annotations\[0\] \(id 1\) refers to image_id 7"),
    "bbox of three numbers": (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]),
                              r"annotations\[0\] \(id 1\) has bbox \[1, 2, 3\]"),
    "bbox not a list": (lambda d: d["annotations"][0].update(bbox="1 2 3 4"),
                        r"has 'bbox' = '1 2 3 4', expected list"),
    "duplicate annotation id": (lambda d: d["annotations"][1].update(id=1),
                                r"annotation id 1 appears more than once"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_file_names_file_and_entry(case, valid, tmp_path):
    edit, message = CASES[case]
    data = edit if not callable(edit) else broken(valid, edit)
    path = write(tmp_path, data)
    with pytest.raises(BadAnnotationError, match=message) as err:
        check_coco_annotations(path)
    assert path in str(err.value) and "\n" not in str(err.value)


def test_boxes_of_non_positive_size_are_skipped_with_a_warning(valid, synthcoco, tmp_path,
                                                                monkeypatch):
    data = broken(valid, lambda d: (d["annotations"][0]["bbox"].__setitem__(2, 0),
                                    d["annotations"][3]["bbox"].__setitem__(3, -2)))
    path = write(tmp_path, data)
    logged = []
    monkeypatch.setattr(coco_module, "print_log", lambda msg, **kw: logged.append(msg))
    summary = check_coco_annotations(path)
    assert summary["skipped_boxes"] == [1, 4]
    assert len(logged) == 1 and "skipping 2 box(es)" in logged[0] and path in logged[0]
    dataset = CheckedCocoDataset(ann_file=path, data_root=str(synthcoco),
                                 data_prefix=dict(img="val2017/"), test_mode=True,
                                 metainfo=dict(classes=("person", "rider", "car",
                                                        "traffic light", "traffic sign")))
    boxes = sum(len(dataset.get_data_info(i)["instances"]) for i in range(len(dataset)))
    assert boxes == len(valid["annotations"]) - 2


def test_image_listed_but_missing_on_disk(valid, synthcoco, tmp_path):
    data = broken(valid, lambda d: d["images"][1].update(file_name="000009999999.jpg"))
    path = write(tmp_path, data)
    check_coco_annotations(path)  # the file itself is fine
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) listed in .*instances_bad.json'"
                                                r" are missing on disk, e.g. .*000009999999.jpg"):
        CheckedCocoDataset(ann_file=path, data_root=str(synthcoco),
                           data_prefix=dict(img="val2017/"), test_mode=True)
    with pytest.raises(FileNotFoundError, match=r"COCO data_root .* does not exist"):
        CheckedCocoDataset(ann_file=path, data_root=str(tmp_path / "nowhere"))


@pytest.mark.slow
def test_cli_reports_a_bad_annotation_file_in_one_line(valid, synthcoco, tmp_path, capsys):
    """`seg-sparse train` on a detection config whose train annotations are broken: exit 2."""
    from det_support import small_config

    from seg_sparse.cli.main import main

    root = tmp_path / "data"
    (root / "annotations").mkdir(parents=True)
    (root / "train2017").symlink_to(synthcoco / "val2017")
    (root / "val2017").symlink_to(synthcoco / "val2017")
    good = json.dumps(valid)
    (root / "annotations/instances_val2017.json").write_text(good)
    bad = broken(valid, lambda d: d["annotations"][2].update(category_id=42))
    (root / "annotations/instances_train2017.json").write_text(json.dumps(bad))
    config = small_config(tmp_path, root)
    rc = main(["train", str(config), "--work-dir", str(tmp_path / "work"), "--cfg-options",
               "experiment_name=det_bad_input"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("seg-sparse train: error: annotation file ")
    assert "instances_train2017.json" in err[-1] and "unknown category_id 42" in err[-1]
