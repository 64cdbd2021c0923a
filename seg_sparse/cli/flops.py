"""``seg-sparse flops CONFIG``: GFLOPs of backbone, head and total (docs/design.md).

Without a checkpoint: the dense count of the config's model at ``--shape`` (default: the
validation pipeline's resize, e.g. 1024x2048 for Cityscapes). With ``--checkpoint``: also the
executed ("sparse") GFLOPs, from the per-block mask densities measured on ``--num-images``
validation images (averaged over the images and applied at ``--shape``), plus the mIoU on those
images. Detection configs (mmdet): the backbone only, by default at the paper's test size (the
test resize's sides floored to multiples of 32: 992x1664 for short side 1000), and COCO mAP.
Prints a table and writes ``flops.json``.
"""

from __future__ import annotations

import argparse
import os.path as osp
from typing import Any

from mmengine.config import Config

from seg_sparse.analysis.loading import evaluate_on_val_images
from seg_sparse.apis import build_eval_model, load_config, load_weights
from seg_sparse.fileio import check_input_file, check_writable_dir

from .common import CommandError, ConfigOptionsAction, add_command

NAME = "flops"
OUTPUT_FILE = "flops.json"
EPILOG = """examples:
  # dense GFLOPs at the config's test size (1024x2048 for Cityscapes)
  seg-sparse flops configs/fcn_dcn/fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024.py
  # a trained sparse model: densities measured on 50 val images, at 512x1024
  seg-sparse flops configs/sparse_fcn/sparse-fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w0.1.py \\
      --checkpoint work_dirs/sparse_w0.1/iter_60000.pth --num-images 50 --shape 512 1024
  # detection: backbone GFLOPs at 992x1664 (the paper's size for short side 1000)
  seg-sparse flops configs/faster_rcnn_dcn/faster-rcnn_r101-dcn_fpn_8xb1-1x_coco.py
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = add_command(
        subparsers, NAME, epilog=EPILOG, doc=__doc__,
        help="GFLOPs of backbone/head/total, dense and with measured sampling densities")
    parser.add_argument("config", help="model config file")
    parser.add_argument("--shape", nargs=2, type=int, metavar=("H", "W"),
                        help="network input size (default: the val pipeline's Resize scale)")
    parser.add_argument("--checkpoint", help="trained weights: also report the executed "
                        "GFLOPs from densities measured on validation images")
    parser.add_argument("--num-images", type=int, default=20, metavar="N",
                        help="validation images to measure densities on (default: 20)")
    parser.add_argument("--out-dir", help=f"where to write {OUTPUT_FILE} "
                        "(default: ./work_dirs/<config name>)")
    parser.add_argument("--data-root", help="dataset root of the validation dataloader")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow a trusted legacy checkpoint that needs more than plain data "
                        "to unpickle (unpickling an untrusted file can run code)")
    parser.add_argument("--cfg-options", nargs="+", action=ConfigOptionsAction, metavar="KEY=VALUE",
                        help="override config keys (checked like `seg-sparse test`)")
    return parser


def eval_input_shape(cfg: Config) -> tuple[int, int]:
    """(H, W) the validation pipeline (the one densities are measured on; else the test
    pipeline) resizes to: mmcv's ``Resize`` scale is (W, H); with ``keep_ratio`` it is exact
    for images of the scale's aspect ratio (Cityscapes: 1024x2048). Detection configs: the
    paper's test size (:func:`seg_sparse.apis.task.detection_test_shape`)."""
    from seg_sparse.apis.task import detection_test_shape, is_detection, test_resize_scale

    scale = test_resize_scale(cfg)
    if scale is None:
        raise CommandError("cannot derive the input size from the config's val pipeline (no "
                           "Resize with a (W, H) scale): pass --shape H W")
    return detection_test_shape(cfg) if is_detection(cfg) else (scale[1], scale[0])


def run(args: argparse.Namespace) -> int:
    if args.checkpoint is not None and "://" not in args.checkpoint:
        check_input_file(args.checkpoint, "checkpoint")
    if args.num_images < 1:
        raise CommandError(f"--num-images must be >= 1, got {args.num_images}")
    if args.shape is not None and min(args.shape) < 1:
        raise CommandError(f"--shape must be two positive integers H W, got {args.shape}")
    out_dir = args.out_dir or osp.join("work_dirs", osp.splitext(osp.basename(args.config))[0])
    check_writable_dir(out_dir)
    cfg = load_config(args.config, args.cfg_options, args.data_root)
    shape = tuple(args.shape) if args.shape else eval_input_shape(cfg)
    model = build_eval_model(cfg)

    from seg_sparse.analysis.curve import sampler_of_config
    from seg_sparse.analysis.task_metrics import model_flops
    from seg_sparse.apis.task import config_task

    result: dict[str, Any] = {"config": args.config, "checkpoint": args.checkpoint,
                              "task": config_task(cfg), "sampler": sampler_of_config(cfg)}
    extra_rows: dict[str, Any] = {}
    if args.checkpoint is None:
        report = model_flops(cfg, model, shape)
    else:
        load_weights(model, args.checkpoint, args.trust_checkpoint)
        measured, metric = evaluate_on_val_images(model, cfg, args.num_images)
        report = metric.flops_profile(shape).with_densities(
            measured.pop("densities"), measured.pop("head_densities", None))
        result.update(measured)
        name = measured["metric"]
        extra_rows[f"{name} ({measured['num_images']} images)"] = measured[name]
    result.update(report.to_dict())
    detection = result["task"] == "detection"
    title = ("Backbone GFLOPs (multiply-accumulates / 1e9; detection: FPN and heads not counted)"
             if detection else None)
    print(report.format_table(title=title, extra_rows=extra_rows, backbone_only=detection))

    from seg_sparse.outputs import write_json

    path = write_json(out_dir, OUTPUT_FILE, result)
    print(f"GFLOPs written to {path}")
    return 0
