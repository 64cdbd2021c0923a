"""``seg-sparse prune CONFIG CHECKPOINT --ratios ...``: pruning compatibility (appendix).

``torch.nn.utils.prune.global_unstructured`` (L1) zeroes each ratio of the backbone's conv
weights (stem, conv1/conv2/conv3, downsample; not the DCN offset convs nor the mask
predictors), starting from the checkpoint every time. For the unpruned model and each ratio:
remaining parameters, GFLOPs counting only non-zero weights (each conv's MACs scaled by its
fraction of non-zero weights, at the measured sampling densities) and mIoU (COCO mAP for a
detection config). Works for dense
and sparse models. Writes ``prune.json``, ``prune.txt`` and ``prune.png``.
"""

from __future__ import annotations

import argparse
import os.path as osp

from .analysis_args import add_model_options, load, out_dir, report_written
from .common import CommandError, add_command

NAME = "prune"
EPILOG = """examples:
  seg-sparse prune configs/sparse_fcn/sparse-fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w0.1.py \\
      work_dirs/sparse_w0.1/iter_60000.pth --ratios 0.5 0.55 0.6 0.66 0.7 0.75 \\
      --out-dir work_dirs/analysis/prune_sparse
  # the dense baseline, for comparison
  seg-sparse prune configs/fcn_dcn/fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024.py \\
      work_dirs/dense/iter_60000.pth --out-dir work_dirs/analysis/prune_dense
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from seg_sparse.analysis.prune import DEFAULT_RATIOS

    parser = add_command(
        subparsers, NAME, epilog=EPILOG, doc=__doc__,
        help="global L1 pruning of backbone convs: params, GFLOPs and mIoU per ratio")
    parser.add_argument("config", help="model config file")
    parser.add_argument("checkpoint", help="trained checkpoint")
    parser.add_argument("--ratios", nargs="+", type=float, default=list(DEFAULT_RATIOS),
                        metavar="R", help="fractions of the backbone conv weights to zero "
                        f"(default: {' '.join(map(str, DEFAULT_RATIOS))})")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the stochastic test-time masks (default 0)")
    add_model_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from seg_sparse.analysis.prune import run_pruning
    from seg_sparse.outputs import write_json, write_text
    from seg_sparse.visualization.pruning import pruning_chart

    bad = [r for r in args.ratios if not 0.0 < r < 1.0]
    if bad:
        raise CommandError(f"--ratios must lie in (0, 1), got {bad}")
    loaded = load(args, args.config, args.checkpoint)
    total = len(args.ratios) + 1
    result = run_pruning(loaded, args.ratios, args.num_images, seed=args.seed,
                         on_ratio=lambda i, r: print(f"[{i + 1}/{total}] pruning ratio {r:g}"))
    text = result.format_table()
    print(text)
    directory = out_dir(args)
    data = result.to_dict()
    png = osp.join(directory, "prune.png")
    name = osp.splitext(osp.basename(args.config))[0]
    pruning_chart(data["rows"], png, title=f"Global L1 pruning of backbone convs: {name}",
                  metric=f"{result.metric} (%)", key=result.metric)
    report_written([write_json(directory, "prune.json", data),
                    write_text(directory, "prune.txt", text), png])
    return 0
