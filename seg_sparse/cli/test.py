"""``seg-sparse test CONFIG CHECKPOINT``: evaluate a checkpoint, write metrics and predictions.

Speaks mmseg's ``tools/test.py`` (mmdet's, for a detection config): ``--out`` (segmentation:
the predicted label maps, ``<image>.png`` with train ids, written by the IoU metric; detection:
a ``.pkl`` of the predictions), ``--show`` / ``--show-dir`` / ``--wait-time`` (the
visualization hook draws every test prediction) and ``--tta`` (test-time augmentation), with
their meanings there. Plus: the checkpoint is checked against the model first (mmengine only
warns on a mismatch), ``--submission-dir`` writes Cityscapes submission PNGs (labelIds,
``<city>_<seq>_<frame>_leftImg8bit.png``), ``--cityscapes-eval`` adds the official
cityscapesscripts evaluation next to mmseg's IoUMetric, a progress bar shows whatever the
config's ``log_level``, and the metrics (with per-class IoU for segmentation) are printed as a
table and written to ``<work_dir>/metrics.json``.
"""

from __future__ import annotations

import argparse
import copy
import math
import os.path as osp
from typing import Any

from seg_sparse.fileio import check_dir_creatable, check_input_file

from .common import CommandError, add_command, add_common_arguments, build_runner, config_from_args
from .compile_args import add_compile_argument, compile_options

NAME = "test"
METRICS_FILE = "metrics.json"
#: Test-time augmentation derived from a segmentation config's test pipeline when the config
#: has no ``tta_pipeline``: these factors of the test size (mmseg's Cityscapes TTA), each
#: flipped and not.
TTA_SCALE_FACTORS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
#: mmseg's / mmdet's TTA models -> seg-sparse's, which keep every pass's densities.
SPARSE_TTA_MODELS = {"SegTTAModel": "SparseSegTTAModel", "DetTTAModel": "SparseDetTTAModel"}
EPILOG = """examples:
  seg-sparse test configs/cpu/fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256.py \\
      work_dirs/cpu_demo/iter_300.pth --work-dir work_dirs/cpu_demo --cityscapes-eval
  # compiled backbone and heads (torch.compile; docs/training.md)
  seg-sparse test CONFIG CHECKPOINT --compile
  # predicted label maps (train ids) and painted predictions, as mmseg's tools/test.py
  seg-sparse test CONFIG CHECKPOINT --out work_dirs/pred --show-dir work_dirs/painted
  # multi-scale + flip test-time augmentation
  seg-sparse test CONFIG CHECKPOINT --tta
  # Cityscapes submission PNGs (labelIds) for the benchmark server
  seg-sparse test CONFIG CHECKPOINT --submission-dir work_dirs/submission
  # 4 GPUs
  torchrun --nproc_per_node 4 -m seg_sparse.cli.main test CONFIG CHECKPOINT --launcher pytorch
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = add_command(
        subparsers, NAME, epilog=EPILOG,
        help="evaluate a checkpoint (mIoU or COCO mAP, metrics.json, optional official eval)",
        description="Evaluate a checkpoint with mmengine's Runner (like mmseg's tools/test.py).")
    parser.add_argument("config", help="test config file path")
    parser.add_argument("checkpoint", help="checkpoint file")
    parser.add_argument(
        "--out",
        metavar="PATH",
        help="as mmseg's / mmdet's test.py: segmentation: a directory for the predicted label "
        "maps (<image>.png, train ids); detection: a .pkl file of the predictions",
    )
    parser.add_argument(
        "--submission-dir",
        metavar="DIR",
        help="write predictions as Cityscapes labelIds PNGs named like the input images "
        "(the benchmark's submission format) to DIR (before: --out)",
    )
    parser.add_argument(
        "--show", action="store_true",
        help="show every painted prediction in a window (needs a display)")
    parser.add_argument(
        "--show-dir",
        metavar="DIR",
        help="save every painted prediction: segmentation under DIR/vis_data/vis_image/ "
        "(mmseg's visualizer), detection under <work_dir>/<timestamp>/DIR/ (mmdet's hook)",
    )
    parser.add_argument(
        "--wait-time", type=float, default=2, metavar="S",
        help="seconds each --show window stays (default 2)")
    parser.add_argument(
        "--tta", action="store_true",
        help="test-time augmentation: the config's tta_pipeline / tta_model, else the test "
        f"size scaled by {', '.join(map(str, TTA_SCALE_FACTORS))} and flipped "
        "(segmentation) or flipped (detection); GFLOPs count every pass")
    parser.add_argument(
        "--cityscapes-eval",
        action="store_true",
        help="also run the official cityscapesscripts pixel-level evaluation (class and "
        "category IoU / iIoU); predictions go to --submission-dir or "
        "<work_dir>/cityscapes_eval",
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
    if "://" not in args.checkpoint:
        check_input_file(args.checkpoint, "checkpoint")
    for folder in output_folders(args):  # written after the evaluation: refuse them first
        check_dir_creatable(folder)
    from seg_sparse.compat import legacy_checkpoints_trusted

    with legacy_checkpoints_trusted(args.trust_checkpoint):  # this command only
        return evaluate(args)


def output_folders(args: argparse.Namespace) -> list[str]:
    """The folders outside the work dir the outputs go to: --out (a folder, or a .pkl file's
    folder) and --submission-dir (--show-dir lies inside the work dir, checked with it)."""
    folders = [args.submission_dir]
    if args.out:
        pickle = args.out.endswith((".pkl", ".pickle"))
        folders.append(osp.dirname(osp.abspath(args.out)) if pickle else args.out)
    return [f for f in folders if f]


def evaluate(args: argparse.Namespace) -> int:
    """Check the checkpoint against the model, test it, print and write the metrics."""
    cfg = config_from_args(args)
    cfg.load_from = args.checkpoint
    from seg_sparse.apis.task import is_detection

    detection = is_detection(cfg)
    check_output_options(args, detection)
    if args.show or args.show_dir:
        trigger_visualization(cfg, args, detection)
    if args.tta:
        use_tta(cfg, detection)
    if not detection:
        cfg.test_evaluator = with_cityscapes_metric(cfg, args.submission_dir,
                                                    args.cityscapes_eval)
        if args.out:
            cfg.test_evaluator = with_prediction_dir(cfg.test_evaluator, args.out)

    from mmengine.model import is_model_wrapper

    from seg_sparse.apis import check_checkpoint_matches
    from seg_sparse.engine import TestProgressHook

    runner = build_runner(cfg)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    if args.tta:
        model = model.module  # the TTA wrapper's
    check_checkpoint_matches(model, args.checkpoint)
    if args.compile:
        from seg_sparse.apis import compile_model

        compile_model(model, **compile_options(args.compile))
    runner.register_hook(TestProgressHook(), priority="VERY_LOW")
    per_class: dict[str, dict[str, float]] = {}
    metric_objects = runner.test_loop.evaluator.metrics
    for metric in metric_objects:
        keep_per_class_iou(metric, per_class)
    if detection and args.out:
        from mmdet.evaluation import DumpDetResults

        metric_objects.append(DumpDetResults(out_file_path=args.out))
    metrics = runner.test()

    from mmengine.dist import is_main_process

    if is_main_process():
        official = next((m.class_scores for m in metric_objects
                         if getattr(m, "class_scores", None)), {})
        report = build_report(cfg, args, metrics, per_class, official)
        from seg_sparse.outputs import write_json

        path = write_json(cfg.work_dir, METRICS_FILE, report)
        print(format_table(report))
        print(f"metrics written to {path}")
        if args.out:
            what = "predictions (pickle)" if detection else "predicted label maps (train ids)"
            print(f"{what} written to {args.out}")
        if args.submission_dir:
            print(f"Cityscapes labelIds predictions written to {args.submission_dir}")
    return 0


def check_output_options(args: argparse.Namespace, detection: bool) -> None:
    """Refuse output options that do not apply or would overwrite each other (exit 2)."""
    if detection and (args.submission_dir or args.cityscapes_eval):
        raise CommandError("--submission-dir and --cityscapes-eval write / score Cityscapes "
                           "label maps: they apply to segmentation configs, not to this "
                           "detection config")
    if detection and args.out and not args.out.endswith((".pkl", ".pickle")):
        raise CommandError(f"--out for a detection config is a pickle file of the predictions "
                           f"(as mmdet's test.py): it must end in .pkl, got '{args.out}'")
    if (args.out and args.submission_dir
            and osp.abspath(args.out) == osp.abspath(args.submission_dir)):
        raise CommandError(f"--out and --submission-dir are both '{args.out}': their files "
                           "have the same names (train ids vs label ids); give two folders")


def trigger_visualization(cfg, args: argparse.Namespace, detection: bool) -> None:
    """``--show`` / ``--show-dir`` as mmseg's (mmdet's) test.py: the config's visualization
    hook draws every test prediction, shown in a window and / or saved."""
    hook = cfg.get("default_hooks", {}).get("visualization")
    if hook is None:
        raise CommandError("--show / --show-dir need the visualization hook: add "
                           "default_hooks=dict(visualization=dict(type='SegVisualizationHook'))"
                           " (DetVisualizationHook for detection) to the config")
    if detection:
        from mmdet.engine.hooks.utils import trigger_visualization_hook

        trigger_visualization_hook(cfg, args)
        return
    hook["draw"] = True
    hook.setdefault("interval", 1)  # mmseg's hook would draw every 50th prediction only
    if args.show:
        hook.update(show=True, wait_time=args.wait_time)
    if args.show_dir:
        cfg.visualizer["save_dir"] = args.show_dir


def use_tta(cfg, detection: bool) -> None:
    """``--tta``: test the config's ``tta_model`` around its model on ``tta_pipeline``; either
    missing is derived (:func:`segmentation_tta_pipeline`, mmdet's flip TTA). mmseg's / mmdet's
    TTA models become seg-sparse's, which count every pass's densities."""
    if detection:
        model = dict(cfg.get("tta_model") or dict(
            type="DetTTAModel", tta_cfg=dict(nms=dict(type="nms", iou_threshold=0.5),
                                             max_per_img=100)))
        pipeline = cfg.get("tta_pipeline") or detection_tta_pipeline(
            cfg.test_dataloader.dataset.pipeline)
    else:
        model = dict(cfg.get("tta_model") or dict(type="SegTTAModel"))
        pipeline = cfg.get("tta_pipeline") or segmentation_tta_pipeline(
            cfg.test_dataloader.dataset.pipeline)
    model["type"] = SPARSE_TTA_MODELS.get(model["type"], model["type"])
    cfg.test_dataloader.dataset.pipeline = pipeline
    cfg.model = dict(**model, module=cfg.model)


def _split_at_labels(pipeline: list) -> tuple[list, list]:
    """(loading and resizing steps, the steps from label loading / packing on)."""
    tail = next((i for i, step in enumerate(pipeline)
                 if str(step.get("type", "")).rpartition(".")[2].startswith(
                     ("LoadAnnotations", "Pack"))), None)
    if tail is None:
        raise CommandError("--tta: the test pipeline has no LoadAnnotations / Pack* step to "
                           "derive a tta_pipeline from; define tta_pipeline in the config")
    return list(pipeline[:tail]), list(pipeline[tail:])


def segmentation_tta_pipeline(pipeline: list) -> list:
    """The test pipeline's loading and resizing, then :data:`TTA_SCALE_FACTORS` of that size,
    each flipped and not, then its label loading and packing (mmseg's Cityscapes TTA, relative
    to the test size instead of the file's)."""
    head, tail = _split_at_labels(copy.deepcopy(list(pipeline)))
    return [*head, dict(type="TestTimeAug", transforms=[
        [dict(type="Resize", scale_factor=r, keep_ratio=True) for r in TTA_SCALE_FACTORS],
        [dict(type="RandomFlip", prob=p, direction="horizontal") for p in (0.0, 1.0)],
        *[[step] for step in tail]])]


def detection_tta_pipeline(pipeline: list) -> list:
    """The test pipeline with its packing step replaced by a flipped and an unflipped pass
    (mmdet's test.py default)."""
    head = copy.deepcopy(list(pipeline))
    pack = head.pop()
    meta_keys = tuple(pack.get("meta_keys", ("img_id", "img_path", "ori_shape", "img_shape",
                                             "scale_factor")))
    meta_keys += tuple(k for k in ("flip", "flip_direction") if k not in meta_keys)
    return [*head, dict(type="TestTimeAug", transforms=[
        [dict(type="RandomFlip", prob=1.0), dict(type="RandomFlip", prob=0.0)],
        [dict(pack, meta_keys=meta_keys)]])]


def with_prediction_dir(evaluators: list[dict], out_dir: str) -> list[dict]:
    """mmseg's ``--out``: the IoU metrics of the test evaluator write every prediction as a
    label map (``output_dir``)."""
    from mmseg.evaluation.metrics import IoUMetric

    found = False
    for evaluator in evaluators:
        if _metric_is(evaluator, IoUMetric):
            evaluator.update(output_dir=out_dir, keep_results=True)
            found = True
    if not found:
        raise CommandError("--out writes the predictions through the test evaluator's "
                           "IoUMetric, and the config has none (test_evaluator)")
    return evaluators


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

    return _metric_is(evaluator, CityscapesMetric)


def _metric_is(evaluator: dict, base: type) -> bool:
    from mmseg.registry import METRICS

    metric_type = evaluator.get("type")
    if isinstance(metric_type, str):
        metric_type = METRICS.get(metric_type)
    return isinstance(metric_type, type) and issubclass(metric_type, base)


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
        report["predictions"] = osp.abspath(args.out)
    if args.submission_dir:
        report["submission_dir"] = osp.abspath(args.submission_dir)
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
