"""``seg-sparse train CONFIG``: mmseg's ``tools/train.py`` as a subcommand.

Thin over mmengine's Runner; adds checked ``--cfg-options``, ``--data-root``, CPU-aware
``--launcher pytorch``, a clear refusal of ``--amp`` without CUDA and of a second training on
a work dir that one is using (:mod:`seg_sparse.engine.work_dir_lock`).
"""

from __future__ import annotations

import argparse
import logging
import os

from .common import CommandError, add_command, add_common_arguments, build_runner, config_from_args
from .compile_args import add_compile_argument, compile_options

NAME = "train"
EPILOG = """examples:
  # CPU, the small synthetic-data config (data from `seg-sparse gen-data`)
  seg-sparse train configs/cpu/fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256.py \\
      --work-dir work_dirs/cpu_demo --cfg-options train_cfg.max_iters=20
  # compiled (torch.compile through mmengine's compile=True; docs/training.md)
  seg-sparse train CONFIG --work-dir work_dirs/x --compile
  # resume from the latest checkpoint in the work dir, or from a given one
  seg-sparse train CONFIG --work-dir work_dirs/x --resume
  seg-sparse train CONFIG --resume work_dirs/x/iter_2000.pth
  # 4 GPUs (or 4 CPU processes with gloo)
  torchrun --nproc_per_node 4 -m seg_sparse.cli.main train CONFIG --launcher pytorch
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = add_command(
        subparsers, NAME, epilog=EPILOG,
        help="train a segmentor or detector from a config",
        description="Train a segmentor or detector with mmengine's Runner (like mmseg's / mmdet's "
        "tools/train.py).")
    parser.add_argument("config", help="train config file path")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        metavar="CHECKPOINT",
        help="resume training (iteration, optimizer, LR schedule, logs): from CHECKPOINT, "
        "or without a value from the latest checkpoint in the work dir",
    )
    parser.add_argument("--amp", action="store_true",
                        help="automatic mixed precision (CUDA only)")
    add_compile_argument(parser)
    add_common_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.amp:
        enable_amp(cfg)
    if args.compile:
        from seg_sparse.apis import enable_compiled_training

        enable_compiled_training(cfg, compile_options(args.compile))
    if args.resume == "auto":
        cfg.resume = True
        cfg.load_from = None
    elif args.resume:
        cfg.resume = True
        cfg.load_from = args.resume
    from seg_sparse.engine.distributed import (
        dist_timeout_s,
        reported_unresponsive_ranks,
        start_heartbeat,
    )
    from seg_sparse.engine.work_dir_lock import acquire_work_dir_lock, release_work_dir_lock

    # before the Runner writes its config dump and logs into the work dir (rank 0 only)
    locked = int(os.environ.get("RANK", "0")) == 0 and acquire_work_dir_lock(cfg.work_dir)
    try:
        runner = build_runner(cfg)
        start_heartbeat()  # every rank; names a rank that stops responding if the run fails
        with reported_unresponsive_ranks(dist_timeout_s(cfg)):
            runner.train()
    finally:
        if locked:
            release_work_dir_lock(cfg.work_dir)
    return 0


def enable_amp(cfg) -> None:
    """Switch the optimizer wrapper to ``AmpOptimWrapper`` (dynamic loss scale) on CUDA."""
    import torch
    from mmengine.logging import print_log

    if not torch.cuda.is_available():
        raise CommandError("--amp needs a CUDA GPU (mixed precision is not used for CPU "
                           "training); drop --amp on this machine.")
    wrapper = cfg.optim_wrapper.get("type", "OptimWrapper")
    if wrapper == "AmpOptimWrapper":
        print_log("AMP is already enabled in the config.", logger="current",
                  level=logging.WARNING)
        return
    if wrapper != "OptimWrapper":
        raise CommandError(f"--amp works with optim_wrapper type 'OptimWrapper', the config "
                           f"uses '{wrapper}'")
    cfg.optim_wrapper.type = "AmpOptimWrapper"
    cfg.optim_wrapper.loss_scale = "dynamic"
