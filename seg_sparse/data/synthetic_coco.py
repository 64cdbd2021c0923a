"""Synthetic street scenes as a COCO 2017 detection dataset.

The same scenes as :mod:`.synthetic` (the Cityscapes-layout generator), written in the COCO
layout with boxes of cars, people, riders, traffic lights and traffic signs::

    ROOT/train2017/<image id:012d>.jpg           ROOT/val2017/<image id:012d>.jpg
    ROOT/annotations/instances_train2017.json    ROOT/annotations/instances_val2017.json

Each box is that of the object's *visible* pixels (nearer objects occlude farther ones, as the
label maps are drawn), with its pixel count as ``area`` and an RLE ``segmentation``; objects
with fewer than :data:`MIN_AREA` visible pixels are left out. Training, mmdet's COCO dataset and
pycocotools' COCOeval then run end to end without COCO. Seeded: the same arguments give the
same files (image ``i`` of a split does not depend on how many others are made).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils
from tqdm import tqdm

from .synthetic import SPLITS, add_scene_arguments, check_generation_args, render_sample

#: COCO categories of the synthetic set; ids are fixed so annotation files stay comparable.
CATEGORIES = (
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 2, "name": "rider", "supercategory": "person"},
    {"id": 3, "name": "car", "supercategory": "vehicle"},
    {"id": 4, "name": "traffic light", "supercategory": "outdoor"},
    {"id": 5, "name": "traffic sign", "supercategory": "outdoor"},
)
CLASSES = tuple(c["name"] for c in CATEGORIES)
#: Objects with fewer visible pixels, or a visible box under 2 px a side, are not annotated.
MIN_AREA = 6
MIN_SIDE = 2
JPEG_QUALITY = 95
#: First image id of each split (ids are unique across the two files, as in COCO).
FIRST_ID = {"train": 1, "val": 1_000_001}


def object_index_map(annotation: dict) -> np.ndarray:
    """(H, W) int32: 1 + index of the object visible at each pixel (0 where none), the
    polygons of the ``*_gtFine_polygons.json`` content drawn in painter's order."""
    canvas = Image.new("I", (annotation["imgWidth"], annotation["imgHeight"]), 0)
    draw = ImageDraw.Draw(canvas)
    for index, obj in enumerate(annotation["objects"]):
        draw.polygon([tuple(p) for p in obj["polygon"]], fill=index + 1)
    return np.asarray(canvas, dtype=np.int32)


def instances(annotation: dict) -> list[dict]:
    """COCO annotations (without ids) of the detection classes' visible parts."""
    category = {c["name"]: c["id"] for c in CATEGORIES}
    index_map = object_index_map(annotation)
    out = []
    for index, obj in enumerate(annotation["objects"]):
        if obj["label"] not in category:
            continue
        visible = index_map == index + 1
        area = int(visible.sum())
        if area < MIN_AREA:
            continue
        ys, xs = np.nonzero(visible)
        x0, y0 = int(xs.min()), int(ys.min())
        w, h = int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0
        if min(w, h) < MIN_SIDE:
            continue
        rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
        out.append({
            "category_id": category[obj["label"]],
            "bbox": [x0, y0, w, h],
            "area": area,
            "iscrowd": 0,
            "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")},
        })
    return out


def _annotation_path(root: Path, split: str) -> Path:
    return root / "annotations" / f"instances_{split}2017.json"


def _check_no_stale_files(root: Path, planned: set[Path]) -> None:
    stale = [p for split in SPLITS if (root / f"{split}2017").is_dir()
             for p in (root / f"{split}2017").iterdir() if p not in planned]
    if stale:
        raise FileExistsError(
            f"{root} already holds {len(stale)} image(s) this run would not write, e.g. "
            f"{sorted(stale)[0]}; remove them or generate into an empty directory")


def generate_synthetic_coco(root: str | Path, num_train: int = 20, num_val: int = 5,
                            height: int = 256, width: int = 512, seed: int = 0,
                            show_progress: bool = True) -> dict:
    """Write ``num_train`` + ``num_val`` scenes and both annotation files under ``root``.

    Returns a summary: root, images and boxes per split, boxes per category, size and seed.
    """
    counts, height, width, seed = check_generation_args(num_train, num_val, height, width, seed)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"output root {root} exists and is not a directory")
    plan = [(split, i, FIRST_ID[split] + i) for split in SPLITS for i in range(counts[split])]
    image_path = {image_id: root / f"{split}2017" / f"{image_id:012d}.jpg"
                  for split, _, image_id in plan}
    _check_no_stale_files(root, set(image_path.values()))

    files = {split: {"info": {"description": "seg-sparse synthetic street scenes (COCO format)",
                              "version": "1.0", "year": 2017},
                     "licenses": [], "images": [], "annotations": [],
                     "categories": [dict(c) for c in CATEGORIES]} for split in SPLITS}
    per_category = dict.fromkeys(CLASSES, 0)
    names = {c["id"]: c["name"] for c in CATEGORIES}
    for split, index, image_id in tqdm(plan, desc="synthetic coco", unit="img",
                                       disable=not show_progress):
        sample = render_sample(seed, split, index, height, width)
        path = image_path[image_id]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sample.image, "RGB").save(path, quality=JPEG_QUALITY)
        files[split]["images"].append({"id": image_id, "file_name": path.name,
                                       "height": height, "width": width})
        anns = files[split]["annotations"]
        for ann in instances(sample.annotation):
            anns.append({"id": len(anns) + 1, "image_id": image_id, **ann})
            per_category[names[ann["category_id"]]] += 1
    for split in SPLITS:
        if counts[split]:
            path = _annotation_path(root, split)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                json.dump(files[split], f)
    return {
        "root": str(root),
        "images": counts,
        "boxes": {split: len(files[split]["annotations"]) for split in SPLITS},
        "boxes_per_category": per_category,
        "height": height,
        "width": width,
        "seed": seed,
    }


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Generate synthetic street scenes as a COCO 2017 detection dataset "
                    "(train2017/, val2017/, annotations/instances_{train,val}2017.json with "
                    "boxes of " + ", ".join(CLASSES) + "), seeded and reproducible.",
        epilog="example:\n  %(prog)s data/synthetic_coco --num-train 20 --num-val 5 "
               "--height 256 --width 512 --seed 0",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scene_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        summary = generate_synthetic_coco(
            args.root, num_train=args.num_train, num_val=args.num_val, height=args.height,
            width=args.width, seed=args.seed, show_progress=not args.no_progress)
    except (TypeError, ValueError, FileExistsError, NotADirectoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    images, boxes = summary["images"], summary["boxes"]
    print(f"wrote {images['train']} train / {images['val']} val images of "
          f"{summary['height']}x{summary['width']} with {boxes['train']} / {boxes['val']} boxes "
          f"to {summary['root']}")
    print("boxes per category: " + ", ".join(f"{k} {v}" for k, v in
                                             summary["boxes_per_category"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
