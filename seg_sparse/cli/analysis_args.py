"""Options shared by the analysis commands (visualize, sparsity, stability, prune)."""

from __future__ import annotations

import argparse
import os.path as osp

from seg_sparse.fileio import check_writable_dir

from .common import CommandError, ConfigOptionsAction


def add_model_options(parser: argparse.ArgumentParser, num_images: bool = True) -> None:
    """``--out-dir``, ``--data-root``, ``--cfg-options``, ``--trust-checkpoint``, and
    ``--num-images`` (validation images to evaluate on)."""
    parser.add_argument("--out-dir", help="where to write the results (default: "
                        "./work_dirs/analysis/<command>)")
    if num_images:
        parser.add_argument("--num-images", type=int, metavar="N",
                            help="evaluate on the first N validation images (default: all)")
    parser.add_argument("--data-root", help="dataset root of the validation dataloader")
    parser.add_argument("--cfg-options", nargs="+", action=ConfigOptionsAction, metavar="KEY=VALUE",
                        help="override config keys (checked like `seg-sparse test`), e.g. "
                        "model.backbone.sampler=deterministic to test with p >= 0.5 masks")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow a trusted legacy checkpoint that needs more than plain data "
                        "to unpickle (unpickling an untrusted file can run code)")


def out_dir(args: argparse.Namespace) -> str:
    return args.out_dir or osp.join("work_dirs", "analysis", args.command)


def check_num_images(args: argparse.Namespace) -> None:
    if getattr(args, "num_images", None) is not None and args.num_images < 1:
        raise CommandError(f"--num-images must be >= 1, got {args.num_images}")


def load(args: argparse.Namespace, config: str, checkpoint: str):
    """The :class:`~seg_sparse.analysis.LoadedModel` of ``config`` + ``checkpoint``."""
    from seg_sparse.analysis import load_model

    check_num_images(args)
    check_writable_dir(out_dir(args))  # before the evaluation, not after it
    return load_model(config, checkpoint, cfg_options=args.cfg_options,
                      data_root=args.data_root, trust_checkpoint=args.trust_checkpoint)


def report_written(paths: list[str]) -> None:
    for path in paths:
        print(f"wrote {path}")
