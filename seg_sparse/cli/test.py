"""``seg-sparse test CONFIG CHECKPOINT``: evaluate a checkpoint, write metrics and predictions.

Like mmseg's (mmdet's, for a detection config) ``tools/test.py``, plus: the checkpoint is
checked against the model first (mmengine only warns on a mismatch), ``--out`` writes
Cityscapes submission PNGs (labelIds, ``<city>_<seq>_<frame>_leftImg8bit.png``),
``--cityscapes-eval`` adds the official cityscapesscripts evaluation next to mmseg's IoUMetric,
and the metrics (with per-class IoU for segmentation) are printed as a table and written to
``<work_dir>/metrics.json``.
"""

from __future__ import annotations

import argparse
import math
import os.path as osp
from typing import Any

from .common import CommandError, add_common_arguments, build_runner, config_from_args
from .compile_args import add_compile_argument, compile_options

NAME = "test"
METRICS_FILE = "metrics.json"
EPILOG = """examples:
  seg-sparse test configs/cpu/fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256.py \\
      work_dirs/cpu_demo/iter_300.pth --work-dir work_dirs/cpu_demo --cityscapes-eval
  # compiled backbone and heads (torch.compile; docs/training.md)
  seg-sparse test CONFIG CHECKPOINT --compile
  # Cityscapes submission PNGs (labelIds) for the benchmark server
  seg-sparse test CONFIG CHECKPOINT --out work_dirs/submission
  # 4 GPUs
  torchrun --nproc_per_node 4 -m seg_sparse.cli.main test CONFIG CHECKPOINT --launcher pytorch
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        NAME,
        help="evaluate a checkpoint (mIoU or COCO mAP, metrics.json, optional official eval)",
        description="Evaluate a checkpoint with mmengine's Runner (like mmseg's tools/test.py).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="test config file path")
    parser.add_argument("checkpoint", help="checkpoint file")
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="write predictions as Cityscapes labelIds PNGs named like the input images "
        "(the benchmark's submission format) to DIR",
    )
    parser.add_argument(
        "--cityscapes-eval",
        action="store_true",
        help="also run the official cityscapesscripts pixel-level evaluation (class and "
        "category IoU / iIoU); predictions go to --out or <work_dir>/cityscapes_eval",
    )
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow a checkpoint from a trusted source that needs more than plain data to "
        "unpickle (older mmengine checkpoints); unpickling an untrusted file can run code",
    )
    add_compile_argument(parser)
    add_common_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    if "://" not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise CommandError(f"checkpoint '{args.checkpoint}' does not exist")
    from seg_sparse.compat import legacy_checkpoints_trusted

    with legacy_checkpoints_trusted(args.trust_checkpoint):  # this command only
        return evaluate(args)


def evaluate(args: argparse.Namespace) -> int:
    """Check the checkpoint against the model, test it, print and write the metrics."""
    cfg = config_from_args(args)
    cfg.load_from = args.checkpoint
    from seg_sparse.tasks import is_detection

    if is_detection(cfg) and (args.out or args.cityscapes_eval):
        raise CommandError("--out and --cityscapes-eval write / score Cityscapes label maps: "
                           "they apply to segmentation configs, not to this detection config")
    cfg.test_evaluator = with_cityscapes_metric(cfg, args.out, args.cityscapes_eval)

    from mmengine.model import is_model_wrapper

    from seg_sparse.apis import check_checkpoint_matches

    runner = build_runner(cfg)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    check_checkpoint_matches(model, args.checkpoint)
    if args.compile:
        from seg_sparse.apis import compile_model

        compile_model(model, **compile_options(args.compile))
    per_class: dict[str, dict[str, float]] = {}
    metric_objects = runner.test_loop.evaluator.metrics
    for metric in metric_objects:
        keep_per_class_iou(metric, per_class)
    metrics = runner.test()

    from mmengine.dist import is_main_process

    if is_main_process():
        official = next((m.class_scores for m in metric_objects
                         if getattr(m, "class_scores", None)), {})
        report = build_report(cfg, args, metrics, per_class, official)
        from seg_sparse.analysis.output import write_json

        path = write_json(cfg.work_dir, METRICS_FILE, report)
        print(format_table(report))
        print(f"metrics written to {path}")
        if args.out:
            print(f"Cityscapes labelIds predictions written to {args.out}")
    return 0


def with_cityscapes_metric(cfg, out_dir: str | None, official: bool) -> list[dict]:
    """The config's test evaluators plus the Cityscapes writer / official evaluation.

    A Cityscapes metric already in the config is reused (pointed at ``out_dir``) rather than
    run twice.
    """
    evaluators = cfg.test_evaluator
    evaluators = [dict(e) for e in (evaluators if isinstance(evaluators, (list, tuple))
                                    else [evaluators])]
    existing = next((e for e in evaluators if _is_cityscapes_metric(e)), None)
    if existing is not None and (official or out_dir):
        if out_dir:
            existing.update(output_dir=out_dir, keep_results=True)
        return evaluators
    if official:
        evaluators.append(dict(
            type="CityscapesOfficialMetric",
            output_dir=out_dir or osp.join(cfg.work_dir, "cityscapes_eval"),
            keep_results=True,
            quiet=True,  # its per-class scores are in our table
        ))
    elif out_dir:
        evaluators.append(dict(type="CityscapesMetric", output_dir=out_dir, format_only=True,
                               keep_results=True))
    return evaluators


def _is_cityscapes_metric(evaluator: dict) -> bool:
    from mmseg.evaluation.metrics import CityscapesMetric
    from mmseg.registry import METRICS

    metric_type = evaluator.get("type")
    if isinstance(metric_type, str):
        metric_type = METRICS.get(metric_type)
    return isinstance(metric_type, type) and issubclass(metric_type, CityscapesMetric)


def keep_per_class_iou(metric: Any, store: dict[str, dict[str, float]]) -> None:
    """Make an ``IoUMetric`` also leave its per-class IoU / Acc (in %) in ``store``.

    mmseg's IoUMetric logs the per-class table but returns only the means.
    """
    from mmseg.evaluation.metrics import IoUMetric

    if not isinstance(metric, IoUMetric) or metric.format_only:
        return
    compute = metric.compute_metrics

    def compute_and_keep(results: list) -> dict:
        summary = compute(results)
        totals = [sum(column) for column in zip(*results)]
        per = metric.total_area_to_metrics(*totals, ["mIoU"], metric.nan_to_num, metric.beta)
        for name, iou, acc in zip(metric.dataset_meta["classes"], per["IoU"], per["Acc"]):
            store[name] = {"IoU": float(iou) * 100, "Acc": float(acc) * 100}
        return summary

    metric.compute_metrics = compute_and_keep


def build_report(cfg, args: argparse.Namespace, metrics: dict, per_class: dict,
                 official_classes: dict) -> dict:
    """The content of ``metrics.json`` (NaN, i.e. a class absent from GT and prediction,
    becomes null)."""
    official_keys = [k for k in metrics if k.startswith("averageScore")]
    from seg_sparse.analysis.curve import sampler_of_config

    report: dict[str, Any] = {
        "config": args.config,
        "checkpoint": args.checkpoint,
        "sampler": sampler_of_config(cfg),  # what `seg-sparse curve` groups by
        "metrics": {k: _finite_or_none(v) for k, v in metrics.items()
                    if k not in official_keys},
        "per_class": {name: {k: _finite_or_none(v) for k, v in vals.items()}
                      for name, vals in per_class.items()},
    }
    if official_keys:
        report["cityscapes_official"] = {k: _finite_or_none(metrics[k]) for k in official_keys}
        report["cityscapes_official"]["classScores"] = {
            k: _finite_or_none(v) for k, v in official_classes.items()}
    if args.out:
        report["predictions_dir"] = osp.abspath(args.out)
    return report


def format_table(report: dict) -> str:
    """Per-class IoU / Acc (and official class IoU) followed by the summary numbers."""
    from prettytable import PrettyTable

    official = report.get("cityscapes_official", {}).get("classScores", {})
    table = PrettyTable()
    table.field_names = ["Class", "IoU", "Acc", *(["official IoU"] if official else [])]
    for name, vals in report["per_class"].items():
        row = [name, _percent(vals["IoU"]), _percent(vals["Acc"])]
        if official:
            score = official.get(name)
            row.append(_percent(None if score is None else score * 100))
        table.add_row(row)
    lines = [table.get_string()] if report["per_class"] else []  # detection: no class IoU
    summary = dict(report["metrics"])
    summary.update({f"official {k}": v for k, v in report.get("cityscapes_official", {}).items()
                    if k != "classScores"})
    lines.append("  ".join(f"{k}: {_fmt(v)}" for k, v in summary.items()))
    return "\n".join(lines)


def _finite_or_none(value: Any) -> Any:
    try:
        # float32 metric values print as 3.7, not 3.700000047683716
        number = float(str(value)) if hasattr(value, "dtype") else float(value)
    except (TypeError, ValueError):
        return value if isinstance(value, (str, list, dict)) else str(value)
    return number if math.isfinite(number) else None


def _percent(value: float | None) -> str:
    return "nan" if value is None else f"{value:.2f}"


def _fmt(value: Any) -> str:
    if value is None:
        return "nan"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) <= 1 else f"{value:.2f}"
    return str(value)
