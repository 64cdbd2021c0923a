"""Synthetic street scenes written in the exact Cityscapes layout.

The whole pipeline (training, mIoU, the official Cityscapes evaluation, mask visualisation) can
then run without the real dataset::

    ROOT/leftImg8bit/{train,val}/<city>/<city>_<seq:06d>_000019_leftImg8bit.png
    ROOT/gtFine/{train,val}/<city>/<city>_<seq:06d>_000019_gtFine_{labelIds,labelTrainIds,
        instanceIds,color}.png and ..._gtFine_polygons.json

Each image is drawn from its own random stream derived from ``(seed, split, index)``, so the
same seed gives byte-identical files and a sample does not depend on how many others are made.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .cs_labels import color_lut, train_id_lut
from .render import annotation_json, paint_image, rasterize_annotation, visible_objects
from .scene import build_street_scene

SPLITS = ("train", "val")
DEFAULT_CITIES: dict[str, tuple[str, ...]] = {
    "train": ("aachen", "bochum", "bremen"),
    "val": ("frankfurt", "lindau", "munster"),
}
FRAME = 19  # Cityscapes' annotated frame of each 30-frame snippet
MIN_SIZE, MAX_SIZE = 32, 4096
CITY_NAME = re.compile(r"[A-Za-z0-9-]+")  # '_' separates the fields of a Cityscapes file name
GT_SUFFIXES = {
    "labelIds": "_gtFine_labelIds.png",
    "labelTrainIds": "_gtFine_labelTrainIds.png",
    "instanceIds": "_gtFine_instanceIds.png",
    "color": "_gtFine_color.png",
    "polygons": "_gtFine_polygons.json",
}


@dataclass(frozen=True)
class SampleId:
    """Where one sample lives in the Cityscapes layout."""

    split: str
    city: str
    seq: int
    index: int  # position within its split (drives the random stream)

    @property
    def stem(self) -> str:
        return f"{self.city}_{self.seq:06d}_{FRAME:06d}"

    def paths(self, root: Path) -> dict[str, Path]:
        gt_dir = root / "gtFine" / self.split / self.city
        paths = {"image": root / "leftImg8bit" / self.split / self.city /
                 f"{self.stem}_leftImg8bit.png"}
        paths.update({kind: gt_dir / f"{self.stem}{suffix}" for kind, suffix in
                      GT_SUFFIXES.items()})
        return paths


@dataclass(frozen=True)
class SyntheticSample:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    label_ids: np.ndarray  # (H, W) uint8 Cityscapes labelIds
    instance_ids: np.ndarray  # (H, W) int32, labelId * 1000 + index for instance classes
    annotation: dict  # *_gtFine_polygons.json content

    @property
    def train_ids(self) -> np.ndarray:
        return train_id_lut()[self.label_ids]

    @property
    def color(self) -> np.ndarray:
        """RGBA like the official ``*_gtFine_color.png``."""
        rgb = color_lut()[self.label_ids]
        alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
        return np.concatenate([rgb, alpha], axis=2)


def render_sample(seed: int, split: str, index: int, height: int, width: int) -> SyntheticSample:
    """Draw one scene; deterministic in (seed, split, index, height, width)."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    visible = visible_objects(build_street_scene(rng, height, width), height, width)
    annotation = annotation_json(visible, height, width)
    label_ids, instance_ids = rasterize_annotation(annotation)
    image = paint_image(visible, label_ids, rng)
    return SyntheticSample(image, label_ids, instance_ids, annotation)


def write_sample(sample: SyntheticSample, paths: Mapping[str, Path]) -> None:
    paths["image"].parent.mkdir(parents=True, exist_ok=True)
    paths["labelIds"].parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sample.image, "RGB").save(paths["image"])
    Image.fromarray(sample.label_ids, "L").save(paths["labelIds"])
    Image.fromarray(sample.train_ids, "L").save(paths["labelTrainIds"])
    Image.fromarray(sample.instance_ids.astype(np.uint16)).save(paths["instanceIds"])
    Image.fromarray(sample.color, "RGBA").save(paths["color"])
    with open(paths["polygons"], "w", encoding="utf-8") as f:
        json.dump(sample.annotation, f, indent=4)


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def _check_cities(cities: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    if cities is None:
        return dict(DEFAULT_CITIES)
    if not isinstance(cities, Mapping):
        raise TypeError(f"cities must map split name -> city names, got {cities!r}")
    unknown = set(cities) - set(SPLITS)
    if unknown:
        raise ValueError(f"cities has unknown split(s) {sorted(unknown)}; expected {SPLITS}")
    out = dict(DEFAULT_CITIES)
    for split, names in cities.items():
        names = (names,) if isinstance(names, str) else tuple(names)
        if not names:
            raise ValueError(f"cities[{split!r}] is empty")
        for name in names:
            if not isinstance(name, str) or not CITY_NAME.fullmatch(name):
                raise ValueError(f"invalid city name {name!r} in cities[{split!r}]: use letters, "
                                 "digits and '-' ('_' separates Cityscapes file-name fields)")
        if len(set(names)) != len(names):
            raise ValueError(f"cities[{split!r}] has duplicates: {names}")
        out[split] = names
    return out


def sample_ids(counts: Mapping[str, int], cities: Mapping[str, Sequence[str]]) -> list[SampleId]:
    """Spread each split's samples round-robin over its cities (sequence numbers per city)."""
    ids = []
    for split in SPLITS:
        names = cities[split]
        for i in range(counts[split]):
            ids.append(SampleId(split, names[i % len(names)], i // len(names), i))
    return ids


def _check_no_stale_files(root: Path, planned: set[Path]) -> None:
    """Refuse to mix with older samples: the dataset would silently load them too."""
    stale = []
    for top in ("leftImg8bit", "gtFine"):
        for split in SPLITS:
            split_dir = root / top / split
            if split_dir.is_dir():
                stale += [p for p in split_dir.rglob("*") if p.is_file() and p not in planned]
    if stale:
        raise FileExistsError(
            f"{root} already holds {len(stale)} file(s) this run would not write, e.g. "
            f"{sorted(stale)[0]}; remove them or generate into an empty directory "
            "(the dataset would load them along with the new samples)")


def check_generation_args(num_train: object, num_val: object, height: object, width: object,
                          seed: object) -> tuple[dict[str, int], int, int, int]:
    """Validated (counts per split, height, width, seed) of a generator call (shared with the
    COCO-layout generator)."""
    counts = {"train": _check_int("num_train", num_train, 0),
              "val": _check_int("num_val", num_val, 0)}
    if sum(counts.values()) == 0:
        raise ValueError("num_train + num_val must be at least 1")
    return (counts, _check_int("height", height, MIN_SIZE, MAX_SIZE),
            _check_int("width", width, MIN_SIZE, MAX_SIZE), _check_int("seed", seed, 0))


def generate_synthetic_cityscapes(root: str | Path, num_train: int = 20, num_val: int = 5,
                                  height: int = 256, width: int = 512, seed: int = 0,
                                  cities: Mapping[str, Sequence[str]] | None = None,
                                  show_progress: bool = True) -> dict:
    """Write ``num_train`` + ``num_val`` synthetic street scenes under ``root``.

    ``cities`` maps 'train' / 'val' to city names (default: three real Cityscapes cities per
    split). Rerunning with the same arguments rewrites identical files. Returns a summary:
    root, counts per split, cities, size, seed and the pixel count of every trainId.
    """
    counts, height, width, seed = check_generation_args(num_train, num_val, height, width, seed)
    city_names = _check_cities(cities)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"output root {root} exists and is not a directory")

    ids = sample_ids(counts, city_names)
    _check_no_stale_files(root, {p for s in ids for p in s.paths(root).values()})
    pixels = np.zeros(256, dtype=np.int64)
    for sample_id in tqdm(ids, desc="synthetic cityscapes", unit="img",
                          disable=not show_progress):
        sample = render_sample(seed, sample_id.split, sample_id.index, height, width)
        write_sample(sample, sample_id.paths(root))
        pixels += np.bincount(sample.train_ids.ravel(), minlength=256)
    return {
        "root": str(root),
        "splits": counts,
        "num_images": len(ids),
        "cities": {split: list(dict.fromkeys(s.city for s in ids if s.split == split))
                   for split in SPLITS},
        "height": height,
        "width": width,
        "seed": seed,
        "train_id_pixels": {int(i): int(n) for i, n in enumerate(pixels) if n},
    }


def add_scene_arguments(parser: argparse.ArgumentParser) -> None:
    """Output root, split sizes, image size and seed (shared with the COCO-layout generator)."""
    parser.add_argument("root", help="output directory (new or holding only samples this run "
                                     "rewrites)")
    parser.add_argument("--num-train", type=int, default=20, help="train images (default 20)")
    parser.add_argument("--num-val", type=int, default=5, help="val images (default 5)")
    parser.add_argument("--height", type=int, default=256, help="image height (default 256)")
    parser.add_argument("--width", type=int, default=512, help="image width (default 512)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Generate synthetic street scenes in the exact Cityscapes layout "
                    "(leftImg8bit + gtFine labelIds / labelTrainIds / instanceIds / color / "
                    "polygons), seeded and reproducible.",
        epilog="example:\n  %(prog)s data/synthetic_cityscapes --num-train 20 --num-val 5 "
               "--height 256 --width 512 --seed 0",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scene_arguments(parser)
    parser.add_argument("--train-cities", nargs="+", metavar="CITY",
                        help=f"train city names (default: {' '.join(DEFAULT_CITIES['train'])})")
    parser.add_argument("--val-cities", nargs="+", metavar="CITY",
                        help=f"val city names (default: {' '.join(DEFAULT_CITIES['val'])})")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    cities = {split: names for split, names in
              (("train", args.train_cities), ("val", args.val_cities)) if names}
    try:
        summary = generate_synthetic_cityscapes(
            args.root, num_train=args.num_train, num_val=args.num_val, height=args.height,
            width=args.width, seed=args.seed, cities=cities or None,
            show_progress=not args.no_progress)
    except (TypeError, ValueError, FileExistsError, NotADirectoryError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2  # bad input, like every seg-sparse command
    splits = summary["splits"]
    print(f"wrote {summary['num_images']} samples ({splits['train']} train, {splits['val']} val) "
          f"of {summary['height']}x{summary['width']} to {summary['root']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
