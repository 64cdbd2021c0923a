"""``seg-sparse demo``: synthetic data, a dense and a sparse model, report, in minutes on CPU."""

from __future__ import annotations

import argparse
import os

from .common import CommandError, add_command

NAME = "demo"
EPILOG = """examples:
  seg-sparse demo                          # everything under ./demo_out (2-5 min on 2 cores)
  seg-sparse demo --out-dir /tmp/demo --iters 100 --sparse-iters 40
  seg-sparse demo --iters 4 --sparse-iters 2 --num-train 4 --num-val 2 --size 64 128  # smoke test
Rerunning with the same data options reuses the generated scenes in <out-dir>/data.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = add_command(
        subparsers, NAME, epilog=EPILOG,
        help="generate data, train a dense and two sparse models on CPU, report mIoU/GFLOPs",
        description="End-to-end demo: synthetic street scenes (Cityscapes layout), a small "
        "dense FCN, its sparse twin and a twin that samples the decode head too (both "
        "fine-tuned from the dense one), evaluation with GFLOPs and densities, pictures of "
        "the sampled masks, and report.json.")
    parser.add_argument("--out-dir", default="demo_out",
                        help="where data, work dirs, figures and report.json go "
                        "(default: demo_out)")
    parser.add_argument("--iters", type=int, default=None,
                        help="training iterations of the dense twin (default: the demo "
                        "config's, 200)")
    parser.add_argument("--sparse-iters", type=int, default=None,
                        help="fine-tuning iterations of each sparse model (default: the demo "
                        "config's, 30)")
    parser.add_argument("--num-train", type=int, default=24, help="training scenes (default 24)")
    parser.add_argument("--num-val", type=int, default=8, help="validation scenes (default 8)")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 256), metavar=("H", "W"),
                        help="scene size, multiples of 32; training crops are half of it "
                        "(default: 128 256)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of data, training and the stochastic masks (default 0)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where to train (default: cpu, also on GPU machines)")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.device == "cpu":
        # hide GPUs before anything initialises CUDA: mmengine's Runner picks CUDA when it sees one
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from seg_sparse.demo import DemoError, DemoSettings, run_demo

    try:
        settings = DemoSettings(
            out_dir=args.out_dir, iters=args.iters, sparse_iters=args.sparse_iters,
            num_train=args.num_train, num_val=args.num_val, seed=args.seed,
            device=args.device, size=tuple(args.size),
        )
        run_demo(settings)
    except DemoError as err:
        raise CommandError(str(err)) from err
    return 0
