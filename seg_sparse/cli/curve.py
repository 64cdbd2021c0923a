"""``seg-sparse curve RESULT.json [RESULT.json ...]``: speed / accuracy curve.

One point per test result (``metrics.json`` of ``seg-sparse test`` with the sparse metric,
mmengine's test JSON, or ``flops.json`` of ``seg-sparse flops --checkpoint``): GFLOPs as
executed (with the measured densities) against mIoU (or mAP), one line per method family --
ours, Determ Gumbel-Softmax, ReLU, uniform sampling -- read from the sampler each result
records (else from hints in its config's file name; the config is never read), or given with
``--family``. Writes ``curve.png``, ``curve.json`` and ``curve.txt``.
"""

from __future__ import annotations

import argparse
import os.path as osp

from .analysis_args import report_written
from .common import add_command

NAME = "curve"
EPILOG = """examples:
  seg-sparse curve work_dirs/sparse_w*/metrics.json work_dirs/determ_w*/metrics.json \\
      work_dirs/uniform*/metrics.json --out-dir work_dirs/analysis/curve
  # families and point labels given explicitly, total instead of backbone GFLOPs
  seg-sparse curve a/metrics.json b/metrics.json --family ours "uniform sampling" \\
      --labels "w0.1" "short side 512" --gflops total
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from seg_sparse.analysis.curve import GFLOPS_KINDS

    parser = add_command(
        subparsers, NAME, epilog=EPILOG, doc=__doc__,
        help="GFLOPs vs mIoU/mAP from several test results, one line per method family")
    parser.add_argument("results", nargs="+", metavar="RESULT.json",
                        help="test result JSON files, one point each")
    parser.add_argument("--family", nargs="+", metavar="NAME",
                        help="method family per result, or one for all (default: from the "
                        "sampler the result records: ours / Determ Gumbel-Softmax / ReLU / "
                        "uniform sampling)")
    parser.add_argument("--labels", nargs="+", metavar="LABEL",
                        help="point label per result (default: tags of the config name, e.g. "
                        "w0.1, else the result's folder)")
    parser.add_argument("--gflops", choices=GFLOPS_KINDS, default="backbone",
                        help="which GFLOPs to plot (default: backbone, the paper's figure)")
    parser.add_argument("--metric", help="accuracy key (default: the first of mIoU, mAP, "
                        "coco/bbox_mAP, bbox_mAP found)")
    parser.add_argument("--title", default="Speed / accuracy trade-off", help="figure title")
    parser.add_argument("--out-dir", help="where to write the results (default: "
                        "./work_dirs/analysis/curve)")
    return parser


def run(args: argparse.Namespace) -> int:
    from seg_sparse.analysis.curve import ResultFileError, format_curve_table, load_curve_points
    from seg_sparse.outputs import write_json, write_text
    from seg_sparse.visualization import speed_accuracy_curve

    from .common import CommandError

    try:
        points, key = load_curve_points(args.results, args.family, args.labels, args.gflops,
                                        args.metric)
    except ResultFileError as err:
        raise CommandError(str(err)) from err
    text = format_curve_table(points, key, args.gflops)
    print(text)
    directory = args.out_dir or osp.join("work_dirs", "analysis", NAME)
    png = osp.join(directory, "curve.png")
    unit = "%" if "IoU" in key or "mAP" in key else ""
    speed_accuracy_curve([p.as_plot_point() for p in points], png,
                         x_label=f"GFLOPs ({args.gflops}, multiply-accumulates / 1e9)",
                         y_label=f"{key} ({unit})" if unit else key, title=args.title)
    data = {"metric": key, "gflops": args.gflops,
            "points": [{"family": p.family, "label": p.label, "gflops": p.gflops,
                        key: p.accuracy, "source": p.source} for p in points]}
    report_written([png, write_json(directory, "curve.json", data),
                    write_text(directory, "curve.txt", text)])
    return 0
