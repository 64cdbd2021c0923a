"""Synthetic COCO: valid instances files whose boxes are the visible objects, reproducible, and
scored by SparseCocoMetric (COCOeval mAP with backbone GFLOPs and densities)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

import seg_sparse  # noqa: F401
from seg_sparse.data.cs_labels import label_id
from seg_sparse.data.synthetic import render_sample
from seg_sparse.data.synthetic_coco import (
    CLASSES,
    FIRST_ID,
    generate_synthetic_coco,
    instances,
    object_index_map,
)
from seg_sparse.evaluation import SparseCocoMetric
from seg_sparse.flops import count_flops
from seg_sparse.models import SparseDetResNet
from seg_sparse.sampling import sparse_blocks

pytest_plugins = ("det_support",)
H, W = 64, 128  # det_support's synthcoco: 3 train / 2 val scenes of 64x128, seed 0


def test_layout_and_a_valid_instances_file(synthcoco: Path):
    for split, n in (("train", 3), ("val", 2)):
        coco = COCO(str(synthcoco / f"annotations/instances_{split}2017.json"))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
        ids = sorted(coco.getImgIds())
        assert ids == list(range(FIRST_ID[split], FIRST_ID[split] + n))
        for image in coco.loadImgs(ids):
            with Image.open(synthcoco / f"{split}2017" / image["file_name"]) as im:
                assert im.size == (image["width"], image["height"]) == (W, H)
        anns = coco.loadAnns(coco.getAnnIds())
        assert anns and len({a["id"] for a in anns}) == len(anns)
        for ann in anns:  # each box is its visible mask's bounding box; area its pixel count
            visible = mask_utils.decode(ann["segmentation"])
            ys, xs = np.nonzero(visible)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(),
                                   ys.max() + 1 - ys.min()]
            assert ann["area"] == visible.sum() >= 6 and ann["iscrowd"] == 0


def test_boxes_follow_the_label_maps_occlusion():
    """The object-index map draws the same polygons in the same order as the label maps."""
    sample = render_sample(0, "val", 0, H, W)
    index = object_index_map(sample.annotation)
    labels = [0] + [label_id(o["label"]) for o in sample.annotation["objects"]]
    np.testing.assert_array_equal(np.asarray(labels)[index], sample.label_ids)
    # cars are instances in the Cityscapes maps too: same visible pixels per car
    cars = [a for a in instances(sample.annotation) if a["category_id"] == 3]
    ids = sorted(set(np.unique(sample.instance_ids).tolist()) & set(range(26000, 27000)))
    assert cars and len(cars) <= len(ids)
    car_areas = sorted(int((sample.instance_ids == i).sum()) for i in ids)
    assert all(a["area"] in car_areas for a in cars)


def test_reproducible_and_refuses_stale_files(tmp_path: Path, synthcoco: Path):
    again = tmp_path / "again"
    generate_synthetic_coco(again, num_train=3, num_val=2, height=H, width=W, seed=0,
                            show_progress=False)
    for rel in ("annotations/instances_val2017.json", "val2017/000001000002.jpg"):
        assert (again / rel).read_bytes() == (synthcoco / rel).read_bytes()
    other = tmp_path / "other"
    generate_synthetic_coco(other, num_train=1, num_val=2, height=H, width=W, seed=1,
                            show_progress=False)
    assert (other / "val2017/000001000001.jpg").read_bytes() != \
        (synthcoco / "val2017/000001000001.jpg").read_bytes()
    with pytest.raises(FileExistsError, match="would not write"):
        generate_synthetic_coco(again, num_train=1, num_val=1, height=H, width=W,
                                show_progress=False)
    with pytest.raises(ValueError, match="height must be"):
        generate_synthetic_coco(tmp_path / "x", height=8, show_progress=False)


def predictions_from_ground_truth(ann_file: Path, image_ids: list[int]) -> list[dict]:
    """Perfect detections of the given images, as mmdet's Evaluator hands them to a metric."""
    coco = COCO(str(ann_file))
    label = {cat: i for i, cat in enumerate(sorted(coco.getCatIds()))}
    samples = []
    for image_id in image_ids:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)])
        samples.append({
            "img_id": image_id, "ori_shape": (H, W),
            "pred_instances": {"bboxes": boxes, "scores": torch.ones(len(anns)),
                               "labels": torch.tensor([label[a["category_id"]] for a in anns])},
            "sampling_input_shape": (64, 128),
        })
    return samples


def test_metric_scores_ground_truth_perfectly_with_backbone_gflops(synthcoco: Path):
    ann_file = synthcoco / "annotations/instances_val2017.json"
    metric = SparseCocoMetric(ann_file=str(ann_file))
    metric.dataset_meta = {"classes": CLASSES}
    backbone = SparseDetResNet(depth=50, base_channels=8)
    detector = torch.nn.Module()
    detector.backbone = backbone
    metric.set_flops_model(detector)  # as SparseFlopsHook hands it over: counts the backbone
    samples = predictions_from_ground_truth(ann_file, [FIRST_ID["val"]])  # 1 of the 2 images
    names = [name for name, _ in sparse_blocks(backbone)]
    for sample in samples:
        sample["sampling_densities"] = dict.fromkeys(names, (0.5, 0.25))
    metric.process({}, samples)
    result = metric.evaluate(1)
    assert result["coco/bbox_mAP"] == 1.0  # the image not evaluated does not count as missed
    report = count_flops(backbone, (64, 128))
    assert result["coco/gflops_backbone_dense"] == pytest.approx(report.backbone_dense)
    sparse = report.with_densities(dict.fromkeys(names, (0.5, 0.25))).backbone_sparse
    assert result["coco/gflops_backbone_sparse"] == pytest.approx(sparse)
    assert result["coco/density_mean"] == pytest.approx(0.375)
    assert not any("head" in k or "total" in k for k in result)


def test_gen_coco_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from seg_sparse.cli.main import main

    assert main(["gen-coco", str(tmp_path / "d"), "--num-train", "1", "--num-val", "1",
                 "--height", "64", "--width", "96", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "wrote 1 train / 1 val images of 64x96" in out
    data = json.loads((tmp_path / "d/annotations/instances_train2017.json").read_text())
    assert data["images"][0]["file_name"] == "000000000001.jpg"
    assert main(["gen-coco", str(tmp_path / "e"), "--height", "8", "--no-progress"]) == 2
