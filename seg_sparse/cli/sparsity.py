"""``seg-sparse sparsity CONFIG CHECKPOINT [CHECKPOINT ...]``: per-block density of conv1,
conv2 and conv3 over the validation set (the appendix's per-block sparsity plot), and where
the model computes: density on class boundaries vs interiors and per ground-truth class.

conv1 runs at the density of mask 1, conv2 and conv3 at the density of mask 2. A cell of a
mask's grid is on a class boundary when a cell within --band cells carries another label
(docs/analysis.md). Writes ``sparsity.json``, ``sparsity.txt`` (tables), ``sparsity.png``
(one panel per checkpoint) and, on segmentation data, ``sparsity_regions.png``.
"""

from __future__ import annotations

import argparse
import os.path as osp

from seg_sparse.analysis.sparsity_regions import DEFAULT_BAND

from .analysis_args import add_model_options, load, out_dir, report_written
from .common import CommandError, add_command

NAME = "sparsity"
EPILOG = """examples:
  # models trained at two loss weights (same architecture, so one config serves both)
  seg-sparse sparsity \\
      configs/sparse_fcn/sparse-fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w0.1.py \\
      work_dirs/sparse_w0.05/iter_60000.pth work_dirs/sparse_w0.2/iter_60000.pth \\
      --labels "loss weight 0.05" "loss weight 0.2" --out-dir work_dirs/analysis/sparsity
  # quick look on 20 validation images, class-boundary band of 2 cells (16 px at stride 8)
  seg-sparse sparsity CONFIG CHECKPOINT --num-images 20 --band 2
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = add_command(
        subparsers, NAME, epilog=EPILOG, doc=__doc__,
        help="per-block density of conv1/conv2/conv3 over the val set (bar chart, JSON, table)")
    parser.add_argument("config", help="model config file (the same for every checkpoint)")
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                        help="trained checkpoint(s); one chart panel each")
    parser.add_argument("--labels", nargs="+", metavar="LABEL",
                        help="panel title per checkpoint (default: <run dir>/<file>)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the stochastic test-time masks (default 0)")
    parser.add_argument("--band", type=int, default=DEFAULT_BAND, metavar="CELLS",
                        help="half-width of the class-boundary band, in cells of each mask's "
                        f"grid (default {DEFAULT_BAND}: 8 px at stride 8)")
    add_model_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from seg_sparse.analysis.sparsity import format_sparsity_table, measure_sparsity
    from seg_sparse.outputs import write_json, write_text
    from seg_sparse.visualization import region_density_chart, sparsity_bar_chart

    if args.band < 1:
        raise CommandError(f"--band must be >= 1 grid cell, got {args.band}")
    if args.labels and len(args.labels) != len(args.checkpoints):
        raise CommandError(f"--labels needs one label per checkpoint ({len(args.checkpoints)}),"
                           f" got {len(args.labels)}")
    models = []
    for i, checkpoint in enumerate(args.checkpoints):
        print(f"[{i + 1}/{len(args.checkpoints)}] {checkpoint}")
        label = args.labels[i] if args.labels else None
        models.append(measure_sparsity(load(args, args.config, checkpoint), args.num_images,
                                       label, args.seed, args.band))
    labels = [m.label for m in models]
    if len(set(labels)) != len(labels):
        raise CommandError(f"checkpoints share the label(s) {labels}; pass --labels")
    directory = out_dir(args)
    text = format_sparsity_table(models)
    print(text)
    per_block = {m.label: {b.name: tuple(b.conv_densities.values()) for b in m.blocks}
                 for m in models}
    png = osp.join(directory, "sparsity.png")
    sparsity_bar_chart(per_block, png, head={m.label: m.head for m in models})
    written = [
        write_json(directory, "sparsity.json", {"models": [m.to_dict() for m in models]}),
        write_text(directory, "sparsity.txt", text),
        png,
    ]
    regions = {m.label: m.regions.to_dict() for m in models if m.regions is not None}
    if regions:
        written.append(osp.join(directory, "sparsity_regions.png"))
        region_density_chart(regions, written[-1])
    report_written(written)
    return 0
