"""``report.json`` and the summary table printed at the end of the demo."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from prettytable import PrettyTable

from seg_sparse.fileio import atomic_write_text

from .training import ModelRun

MODEL_KEYS = ("dense", "sparse", "sparse_head")


def model_entry(run: ModelRun) -> dict[str, Any]:
    """Accuracy, GFLOPs (as executed and dense), densities, timings and files of one model."""
    m = run.metrics
    executed_backbone = float(m.get("gflops_backbone_sparse", m["gflops_backbone_dense"]))
    executed_head = float(m.get("gflops_head_sparse", m["gflops_head"]))
    executed_total = float(m.get("gflops_total_sparse", m["gflops_total_dense"]))
    return {
        "mIoU": float(m["mIoU"]),
        "gflops": {
            "backbone": executed_backbone,
            "head": executed_head,
            "total": executed_total,
        },
        "gflops_dense": {
            "backbone": float(m["gflops_backbone_dense"]),
            "head": float(m["gflops_head"]),
            "total": float(m["gflops_total_dense"]),
        },
        "mean_density": float(m["density_mean"]),
        "block_densities": {k: [float(d) for d in v] for k, v in m["sampling_densities"].items()},
        "head_mean_density": float(m.get("head_density_mean", 1.0)),
        "head_densities": {k: float(d) for k, d in m.get("head_sampling_densities", {}).items()},
        "where_computed": None if run.regions is None else {
            "band": run.regions.band, **run.regions.summary()},
        "train_time_s": run.train_time_s,
        "eval_time_s": run.eval_time_s,
        "iterations": run.iterations,
        "initialised_from": run.init_from,
        "config": str(run.config),
        "work_dir": str(run.work_dir),
        "checkpoint": str(run.checkpoint),
    }


def _comparison(report: dict[str, Any], model: str, baseline: str) -> dict[str, float]:
    a, b = report[model], report[baseline]
    return {
        "backbone_gflops_ratio": a["gflops"]["backbone"] / b["gflops"]["backbone"],
        "head_gflops_ratio": a["gflops"]["head"] / b["gflops"]["head"],
        "total_gflops_ratio": a["gflops"]["total"] / b["gflops"]["total"],
        "miou_difference": a["mIoU"] - b["mIoU"],
    }


def build_report(dense: ModelRun, sparse: ModelRun, sparse_head: ModelRun,
                 figures: dict[str, str], settings: dict[str, Any],
                 total_time_s: float) -> dict[str, Any]:
    runs = {"dense": dense, "sparse": sparse, "sparse_head": sparse_head}
    report: dict[str, Any] = {key: model_entry(run) for key, run in runs.items()}
    report["sparse_vs_dense"] = _comparison(report, "sparse", "dense")
    report["sparse_head_vs_dense"] = _comparison(report, "sparse_head", "dense")
    report["sparse_head_vs_sparse"] = _comparison(report, "sparse_head", "sparse")
    report["figures"] = figures
    report["settings"] = settings
    report["unit"] = "GFLOPs = multiply-accumulates / 1e9 at the evaluation input size"
    report["total_time_s"] = total_time_s
    _check_finite(report)
    return report


def _check_finite(value: Any, where: str = "report") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is not finite ({value}): the evaluation went wrong")


def write_report(report: dict[str, Any], path: Path) -> Path:
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    return path


def _ratio(where: dict[str, Any] | None) -> str:
    return "-" if where is None else f"{where['boundary_interior_ratio']:.2f}"


def format_summary(report: dict[str, Any], report_path: Path) -> str:
    """The table of both models and the list of files written."""
    table = PrettyTable()
    table.field_names = ["model", "mIoU", "GFLOPs backbone", "GFLOPs head", "GFLOPs total",
                         "mean density", "head density", "boundary / interior", "train s",
                         "eval s"]
    table.align = "r"
    table.align["model"] = "l"
    for key in MODEL_KEYS:
        e = report[key]
        table.add_row([key, f"{e['mIoU']:.2f}", f"{e['gflops']['backbone']:.4f}",
                       f"{e['gflops']['head']:.4f}", f"{e['gflops']['total']:.4f}",
                       f"{e['mean_density']:.3f}", f"{e['head_mean_density']:.3f}",
                       _ratio(e["where_computed"]),
                       f"{e['train_time_s']:.0f}", f"{e['eval_time_s']:.0f}"])
    ratio = report["sparse_vs_dense"]
    head = report["sparse_head_vs_sparse"]
    h, w = report["settings"]["size"]
    lines = [
        f"Results on {report['settings']['num_val']} synthetic validation scenes ({h}x{w}); "
        "GFLOPs = multiply-accumulates / 1e9 as executed with the measured densities",
        table.get_string(),
        f"sparse / dense backbone GFLOPs: {100 * ratio['backbone_gflops_ratio']:.1f}%, "
        f"total: {100 * ratio['total_gflops_ratio']:.1f}%; "
        f"mIoU difference {ratio['miou_difference']:+.2f}",
        f"sparse_head / sparse total GFLOPs: {100 * head['total_gflops_ratio']:.1f}% "
        f"(head {100 * head['head_gflops_ratio']:.1f}%); mIoU difference "
        f"{head['miou_difference']:+.2f}",
        "boundary / interior: backbone density on class boundaries (1 cell of each mask's "
        "grid from a class edge) over the density inside classes (docs/analysis.md)",
        "",
        "Written:",
        f"  report       {report_path}",
    ]
    for key in MODEL_KEYS:
        lines.append(f"  {key:<12} {report[key]['checkpoint']}  (logs: {report[key]['work_dir']})")
    for key, path in report["figures"].items():
        lines.append(f"  figure       {path}  ({key.replace('_', ' ')})")
    lines.append(f"  data         {report['settings']['data_root']}")
    lines.append(f"Total time {report['total_time_s']:.0f} s")
    return "\n".join(lines)
