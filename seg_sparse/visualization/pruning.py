"""Chart of the pruning-compatibility experiment: accuracy and cost against the pruning ratio."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .style import new_figure, save_figure

_ROW_KEYS = ("ratio", "gflops_backbone", "model_params_nonzero")


def pruning_chart(
    rows: Sequence[Mapping[str, Any]],
    out_path: str | Path | None = None,
    title: str = "Global L1 pruning of backbone convs",
    metric: str = "mIoU (%)",
    key: str = "mIoU",
) -> Figure:
    """Two panels over the pruning ratio: accuracy (left); backbone GFLOPs counting non-zero
    weights and non-zero parameters in millions (right, two y axes). Each point is labelled
    with its value. ``rows``: dicts with ratio, the accuracy ``key`` (mIoU; mAP for
    detection), gflops_backbone, model_params_nonzero (as written by ``seg-sparse prune``)."""
    if not rows:
        raise ValueError("no pruning results to plot")
    for i, row in enumerate(rows):
        missing = [k for k in (*_ROW_KEYS, key) if k not in row]
        if missing:
            raise ValueError(f"pruning row {i} lacks keys {missing}")
    rows = sorted(rows, key=lambda r: r["ratio"])
    ratios = [100.0 * r["ratio"] for r in rows]
    fig = new_figure(11.0, 4.4)
    acc_ax, cost_ax = fig.subplots(1, 2)

    accuracy = [r[key] for r in rows]
    acc_ax.plot(ratios, accuracy, marker="o", color="#4C72B0", linewidth=1.8)
    for x, y in zip(ratios, accuracy):
        acc_ax.annotate(f"{y:.1f}", (x, y), xytext=(0, 6), textcoords="offset points",
                        ha="center", fontsize=8)
    acc_ax.margins(y=0.15)  # room for the value labels
    acc_ax.set_title("accuracy", fontsize=11)
    acc_ax.set_ylabel(metric)

    gflops = [r["gflops_backbone"] for r in rows]
    params = [r["model_params_nonzero"] / 1e6 for r in rows]
    (g_line,) = cost_ax.plot(ratios, gflops, marker="s", color="#DD8452", linewidth=1.8,
                             label="backbone GFLOPs (non-zero weights)")
    cost_ax.set_ylabel("GFLOPs (multiply-accumulates / 1e9)")
    cost_ax.set_ylim(0, max(gflops) * 1.15)
    params_ax = cost_ax.twinx()
    (p_line,) = params_ax.plot(ratios, params, marker="^", color="#55A868", linewidth=1.8,
                               linestyle="--", label="non-zero parameters (M, whole model)")
    params_ax.set_ylabel("non-zero parameters (millions)")
    params_ax.set_ylim(0, max(params) * 1.15)
    cost_ax.set_title("cost", fontsize=11)
    cost_ax.legend(handles=[g_line, p_line], loc="lower left", fontsize=8)

    for ax in (acc_ax, cost_ax):
        ax.set_xlabel("pruned fraction of backbone conv weights (%)")
        ax.set_xticks(ratios, [f"{x:.0f}" for x in ratios])
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.tight_layout()
    if out_path is not None:
        save_figure(fig, out_path)
    return fig
