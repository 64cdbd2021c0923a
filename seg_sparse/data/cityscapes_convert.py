"""Convert Cityscapes gtFine polygons to the ``*_gtFine_labelTrainIds.png`` maps mmseg trains on.

Does what cityscapesscripts' ``json2labelImg(json, png, 'trainIds')`` does (its annotation
reader and rasteriser ``createLabelImage``), but checks the labels first: cityscapesscripts
calls ``sys.exit`` on an unknown label, which would hang a worker pool. Runs in parallel and
skips label maps that already exist. Each map is written to a temporary file and
renamed, so an interrupted run never leaves a truncated PNG that a later run would skip.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from multiprocessing import Pool
from pathlib import Path

from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.helpers.labels import name2label
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from tqdm import tqdm

POLYGON_SUFFIX = "_gtFine_polygons.json"
TRAIN_ID_SUFFIX = "_gtFine_labelTrainIds.png"
EXPECTED_LAYOUT = f"ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>{POLYGON_SUFFIX}"


def train_id_path(polygon_file: Path) -> Path:
    return polygon_file.with_name(polygon_file.name[:-len(POLYGON_SUFFIX)] + TRAIN_ID_SUFFIX)


def find_polygon_files(root: str | Path) -> list[Path]:
    """All gtFine polygon files under ``root``, with a clear error when the root is wrong."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Cityscapes root {root} does not exist or is not a directory "
                                f"(expected {EXPECTED_LAYOUT})")
    gt_dir = root / "gtFine"
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"no gtFine directory in Cityscapes root {root}: expected "
                                f"{EXPECTED_LAYOUT} (download gtFine_trainvaltest.zip and "
                                "unpack it into ROOT)")
    files = sorted(gt_dir.rglob(f"*{POLYGON_SUFFIX}"))
    if not files:
        raise FileNotFoundError(f"no *{POLYGON_SUFFIX} files under {gt_dir}: expected "
                                f"{EXPECTED_LAYOUT}")
    return files


def _check_labels(annotation: Annotation) -> None:
    for obj in annotation.objects:
        name = obj.label
        if name not in name2label and name.endswith("group"):
            name = name[:-len("group")]  # e.g. 'cargroup': same class, no instance
        if name not in name2label:
            raise ValueError(f"unknown Cityscapes label {obj.label!r}")


def convert_polygon_file(polygon_file: Path) -> Path:
    """Rasterise one polygon JSON to trainIds next to it; errors name the file."""
    out = train_id_path(polygon_file)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.png")
    try:
        annotation = Annotation()
        annotation.fromJsonFile(str(polygon_file))
        _check_labels(annotation)
        createLabelImage(annotation, "trainIds").save(tmp)
        os.replace(tmp, out)
    except Exception as err:  # bad JSON, missing keys, unknown label, unwritable directory
        tmp.unlink(missing_ok=True)
        raise ValueError(f"cannot convert {polygon_file}: {type(err).__name__}: {err}") from err
    return out


def convert_cityscapes(root: str | Path, nproc: int = 4, overwrite: bool = False,
                       show_progress: bool = True) -> int:
    """Write ``*_gtFine_labelTrainIds.png`` for every gtFine polygon file under ``root``.

    Existing label maps are kept unless ``overwrite``. Returns how many were written.
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be a positive integer, got {nproc!r}")
    todo = [f for f in find_polygon_files(root) if overwrite or not train_id_path(f).exists()]
    if not todo:
        return 0
    bar = tqdm(total=len(todo), desc="cityscapes -> labelTrainIds", unit="file",
               disable=not show_progress)
    with bar:
        if nproc == 1 or len(todo) == 1:
            for f in todo:
                convert_polygon_file(f)
                bar.update()
        else:
            with Pool(min(nproc, len(todo))) as pool:
                for _ in pool.imap_unordered(convert_polygon_file, todo, chunksize=4):
                    bar.update()
    return len(todo)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Convert Cityscapes gtFine polygons (*_gtFine_polygons.json) to the "
                    "*_gtFine_labelTrainIds.png maps used for training, with cityscapesscripts.",
        epilog="example:\n  %(prog)s data/cityscapes --nproc 8\n\n"
               f"expected layout: {EXPECTED_LAYOUT}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="Cityscapes root (holding gtFine/ and leftImg8bit/)")
    parser.add_argument("--nproc", type=int, default=4, help="worker processes (default 4)")
    parser.add_argument("--overwrite", action="store_true",
                        help="rewrite label maps that already exist (default: skip them)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        written = convert_cityscapes(args.root, nproc=args.nproc, overwrite=args.overwrite,
                                     show_progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2  # bad input, like every seg-sparse command
    print(f'wrote {written} *{TRAIN_ID_SUFFIX} file(s) under {Path(args.root) / "gtFine"}')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
