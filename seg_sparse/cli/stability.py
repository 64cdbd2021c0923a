"""``seg-sparse stability CONFIG CHECKPOINT --runs 5``: inference stability (appendix).

Evaluates the model N times, run i drawing its stochastic masks from a generator seeded with
``--seed + i``; reports every run and the mean / std of mIoU, GFLOPs and mean density.
``--no-grid-prior`` switches the always-sampled grid off at test time (a model trained
without it has ``grid_interval=None`` in its config already). Writes ``stability.json`` and
``stability.txt``.
"""

from __future__ import annotations

import argparse

from .analysis_args import add_model_options, load, out_dir, report_written
from .common import CommandError, add_command

NAME = "stability"
EPILOG = """examples:
  seg-sparse stability \\
      configs/sparse_fcn/sparse-fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w0.1.py \\
      work_dirs/sparse_w0.1/iter_60000.pth --runs 5 --out-dir work_dirs/analysis/stability
  # the same model without the grid prior at test time
  seg-sparse stability CONFIG CHECKPOINT --runs 5 --no-grid-prior \\
      --out-dir work_dirs/analysis/stability_nogrid
  # the deterministic test-time mask (p >= 0.5) for comparison: std 0
  seg-sparse stability CONFIG CHECKPOINT --runs 2 \\
      --cfg-options model.backbone.sampler=deterministic
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = add_command(
        subparsers, NAME, epilog=EPILOG, doc=__doc__,
        help="evaluate N times with different sampling seeds: mean/std of mIoU and GFLOPs")
    parser.add_argument("config", help="model config file")
    parser.add_argument("checkpoint", help="trained checkpoint")
    parser.add_argument("--runs", type=int, default=5, help="number of evaluations (default 5)")
    parser.add_argument("--seed", type=int, default=0,
                        help="sampling seed of the first run; run i uses seed + i (default 0)")
    parser.add_argument("--no-grid-prior", action="store_true",
                        help="switch the grid prior off at test time")
    add_model_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from seg_sparse.analysis.stability import run_stability
    from seg_sparse.outputs import write_json, write_text

    if args.runs < 1:
        raise CommandError(f"--runs must be >= 1, got {args.runs}")
    loaded = load(args, args.config, args.checkpoint)
    try:
        result = run_stability(
            loaded, args.runs, args.num_images, grid_prior=not args.no_grid_prior,
            first_seed=args.seed,
            on_run=lambda i, seed: print(f"run {i + 1}/{args.runs} (seed {seed})"))
    except ValueError as err:
        raise CommandError(str(err)) from err
    text = result.format_table()
    print(text)
    directory = out_dir(args)
    report_written([write_json(directory, "stability.json", result.to_dict()),
                    write_text(directory, "stability.txt", text)])
    return 0
