"""``seg-sparse visualize CONFIG CHECKPOINT IMAGE_OR_DIR``: sampled masks on street scenes.

Per image, ``<name>_masks.png``: the image, the prediction and mask1 / mask2 of the chosen
blocks over the image (bright = sampled and computed, dark = interpolated), titled with each
mask's density; and ``<name>_stochastic_vs_deterministic.png``: one block's masks under the
paper's stochastic test-time draw (Bernoulli(p)) and the deterministic one (p >= 0.5), same
weights. The stochastic masks of the i-th image are drawn with seed ``--seed`` + i, so reruns
give the same pictures.
"""

from __future__ import annotations

import argparse

from .analysis_args import add_model_options, load, out_dir, report_written
from .common import CommandError, add_command

NAME = "visualize"
EPILOG = """examples:
  seg-sparse visualize \\
      configs/sparse_fcn/sparse-fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w0.1.py \\
      work_dirs/sparse_w0.1/iter_60000.pth \\
      data/cityscapes/leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png \\
      --out-dir work_dirs/analysis/masks
  # every block, for the first 5 images of a folder (searched recursively)
  seg-sparse visualize CONFIG CHECKPOINT data/cityscapes/leftImg8bit/val --blocks all \\
      --num-images 5
  # chosen blocks; compare samplers on layer4.2
  seg-sparse visualize CONFIG CHECKPOINT IMAGE --blocks layer1.2 layer3.5 \\
      --compare-block layer4.2 --seed 3
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = add_command(
        subparsers, NAME, epilog=EPILOG, doc=__doc__,
        help="figures of the sampled masks over street scenes, stochastic vs deterministic")
    parser.add_argument("config", help="model config file (its test pipeline resizes the image)")
    parser.add_argument("checkpoint", help="trained checkpoint of a sparse model")
    parser.add_argument("image", metavar="IMAGE_OR_DIR",
                        help="an image, or a folder searched recursively for images")
    parser.add_argument("--blocks", nargs="+", metavar="BLOCK",
                        help="'all', or block names such as layer1.2 layer3.5 (default: the "
                        "last block of each stage)")
    parser.add_argument("--compare-block", metavar="BLOCK",
                        help="block of the stochastic-vs-deterministic figure (default: the "
                        "shown stage-3 block)")
    parser.add_argument("--num-images", type=int, metavar="N",
                        help="only the first N images of IMAGE_OR_DIR (sorted by path)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the stochastic masks (default 0)")
    parser.add_argument("--score-thr", type=float, default=None, metavar="S",
                        help="detection configs: draw the detections scoring at least S "
                        "(default 0.3, mmdet's visualizer default)")
    add_model_options(parser, num_images=False)
    return parser


def run(args: argparse.Namespace) -> int:
    from seg_sparse.analysis.mask_pictures import describe_boxes, visualize_images
    from seg_sparse.datasets.image_files import find_images

    if args.num_images is not None and args.num_images < 1:
        raise CommandError(f"--num-images must be >= 1, got {args.num_images}")
    images = find_images(args.image)[: args.num_images]
    from seg_sparse.visualization.detections import SCORE_THRESHOLD

    score_thr = SCORE_THRESHOLD if args.score_thr is None else args.score_thr
    if not 0.0 <= score_thr <= 1.0:
        raise CommandError(f"--score-thr must lie in [0, 1], got {score_thr}")
    loaded = load(args, args.config, args.checkpoint)
    blocks = "all" if args.blocks == ["all"] else args.blocks
    try:
        figures = visualize_images(loaded, images, out_dir(args), blocks, args.compare_block,
                                   args.seed, score_threshold=score_thr)
    except ValueError as err:
        if err.__class__ is not ValueError:  # DataDecodeError etc. are reported as they are
            raise
        raise CommandError(str(err)) from err
    for fig in figures:
        shown = ", ".join([f"{n} {100 * (d1 + d2) / 2:.0f}%" for n, (d1, d2) in
                           fig.densities.items()]
                          + [f"head {n} {100 * d:.0f}%" for n, d in fig.head_densities.items()])
        boxes = "" if fig.boxes is None else f"; {describe_boxes(fig.boxes)}"
        print(f"{fig.image}: mean density {shown}{boxes}")
    report_written([p for fig in figures for p in (fig.masks_png, fig.comparison_png)])
    return 0
