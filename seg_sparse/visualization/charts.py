"""Charts of the appendix analyses: per-block densities and the speed/accuracy trade-off."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .style import new_figure, save_figure, share_text

#: Bars of one block: the density at which each conv of the bottleneck runs.
CONV_LABELS = ("conv1 (mask1)", "conv2 (mask2)", "conv3 (mask2)")
CONV_COLORS = ("#4C72B0", "#DD8452", "#55A868")
#: One bar per sampled decode-head conv (its own mask).
HEAD_LABEL, HEAD_COLOR = "decode-head conv (own mask)", "#8172B2"
FAMILY_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

BlockDensities = Mapping[str, Sequence[float]]


def _check_densities(model: str, per_block: BlockDensities) -> dict[str, tuple[float, ...]]:
    if not per_block:
        raise ValueError(f"model {model!r} has no block densities")
    checked = {}
    for block, values in per_block.items():
        values = tuple(float(v) for v in values)
        if len(values) != 3 or not all(0.0 <= v <= 1.0 for v in values):
            raise ValueError(
                f"densities of block {block!r} of model {model!r} must be three values "
                f"(conv1, conv2, conv3) in [0, 1], got {values}"
            )
        checked[block] = values
    return checked


def _check_head(model: str, convs: Mapping[str, float]) -> dict[str, float]:
    checked = {}
    for name, value in convs.items():
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"density of head conv {name!r} of model {model!r} must be in "
                             f"[0, 1], got {value!r}")
        checked[name] = float(value)
    return checked


def sparsity_bar_chart(
    per_block: Mapping[str, BlockDensities], out_path: str | Path | None = None,
    head: Mapping[str, Mapping[str, float]] | None = None,
) -> Figure:
    """Density of conv1 / conv2 / conv3 of every residual block (x axis), one panel per model.

    ``per_block``: model name -> block name -> (d_conv1, d_conv2, d_conv3). Each panel's title
    gives the model's mean density; the y axis is the fraction of positions computed.
    ``head``: model name -> sampled decode-head conv -> density, one bar each after the blocks
    (models without a sampled head are left out).
    """
    if not per_block:
        raise ValueError("per_block is empty: give at least one model's block densities")
    models = {name: _check_densities(name, blocks) for name, blocks in per_block.items()}
    heads = {name: _check_head(name, convs) for name, convs in (head or {}).items() if convs}
    most_blocks = max(len(b) + len(heads.get(m, {})) for m, b in models.items())
    width_in = max(7.0, 0.42 * most_blocks + 2.0)
    fig = new_figure(width_in, 2.9 * len(models) + 0.8)
    axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
    bar = 0.27
    for ax, (model, blocks) in zip(axes, models.items()):
        names = list(blocks)
        values = np.array([blocks[n] for n in names])  # (blocks, 3)
        x = np.arange(len(names))
        for k in range(3):
            ax.bar(x + (k - 1) * bar, values[:, k], bar, color=CONV_COLORS[k],
                   label=CONV_LABELS[k])
        title = f"{model}: mean conv1/conv2/conv3 density {100.0 * values.mean():.1f}%"
        convs = heads.get(model, {})
        if convs:
            xh = np.arange(len(names), len(names) + len(convs))
            ax.bar(xh, list(convs.values()), 3 * bar, color=HEAD_COLOR, label=HEAD_LABEL)
            names = names + [f"head {n}" for n in convs]
            x = np.arange(len(names))
            title += f", head {100.0 * sum(convs.values()) / len(convs):.1f}%"
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("density (fraction computed)")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        ax.set_title(title, fontsize=11)
    axes[-1].set_xlabel("residual block (backbone stage.index)"
                        + (", sampled decode-head conv" if heads else ""))
    height = fig.get_figheight()
    fig.suptitle("Per-block sampling density", fontsize=13, fontweight="bold",
                 y=1 - 0.08 / height)
    handles, labels = [], []
    for ax in axes:  # the head's bar appears only in panels of models with a sampled head
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="upper center", ncols=len(labels), fontsize=9,
               frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.4 / height))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.75 / height))
    if out_path is not None:
        save_figure(fig, out_path)
    return fig


_POINT_KEYS = ("method_family", "label", "gflops", "metric")


def _check_points(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not points:
        raise ValueError("no result points to plot: give at least one")
    checked = []
    for i, point in enumerate(points):
        missing = [k for k in _POINT_KEYS if k not in point]
        if missing:
            raise ValueError(f"point {i} ({dict(point)}) lacks keys {missing}")
        gflops, metric = float(point["gflops"]), float(point["metric"])
        if not (math.isfinite(gflops) and math.isfinite(metric)):
            raise ValueError(f"point {i} ({point['label']!r}) has a non-finite value: "
                             f"gflops={point['gflops']!r}, metric={point['metric']!r}")
        checked.append({**point, "gflops": gflops, "metric": metric})
    return checked


def speed_accuracy_curve(
    points: Sequence[Mapping[str, Any]],
    out_path: str | Path | None = None,
    x_label: str = "GFLOPs (backbone, multiply-accumulates / 1e9)",
    y_label: str = "mIoU (%)",
    title: str = "Speed / accuracy trade-off",
) -> Figure:
    """GFLOPs (x) against the metric (y): one line per ``method_family`` through its points
    sorted by GFLOPs, each point labelled. ``points``: dicts with method_family, label, gflops,
    metric."""
    checked = _check_points(points)
    families: dict[str, list[dict[str, Any]]] = {}
    for point in checked:
        families.setdefault(str(point["method_family"]), []).append(point)
    fig = new_figure(7.5, 5.2)
    ax = fig.add_subplot(1, 1, 1)
    for i, (family, members) in enumerate(families.items()):
        members.sort(key=lambda p: p["gflops"])
        xs = [p["gflops"] for p in members]
        ys = [p["metric"] for p in members]
        (line,) = ax.plot(xs, ys, marker=FAMILY_MARKERS[i % len(FAMILY_MARKERS)],
                          markersize=7, linewidth=1.8, label=family)
        for p in members:
            ax.annotate(str(p["label"]), (p["gflops"], p["metric"]), xytext=(6, 6),
                        textcoords="offset points", fontsize=9, color=line.get_color(),
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=13, fontweight="bold")
    ax.grid(alpha=0.3)
    ax.margins(x=0.12, y=0.12)
    ax.legend(title="method", fontsize=9, loc="best")  # away from the points
    fig.tight_layout()
    if out_path is not None:
        save_figure(fig, out_path)
    return fig


#: Bars of the boundary / interior chart.
REGION_COLORS = {"boundary": "#C44E52", "interior": "#4C72B0"}


def _layer_region_density(layer: Mapping[str, Any], region: str) -> float:
    masks = [layer[k] for k in ("d1", "d2", "density") if k in layer]
    return float(np.mean([m[region] for m in masks]))


def region_density_chart(regions: Mapping[str, Mapping[str, Any]],
                         out_path: str | Path | None = None) -> Figure:
    """Where each model computes, one row per model: left, every block's density on class
    boundaries and in class interiors ((d1 + d2) / 2, sampled head convs after the blocks);
    right, the density on each ground-truth class present (mean over blocks), with its share
    of the labelled cells.

    ``regions``: model name -> the ``regions`` entry of ``sparsity.json``
    (:meth:`seg_sparse.analysis.sparsity_regions.RegionSparsity.to_dict`).
    """
    if not regions:
        raise ValueError("regions is empty: give at least one model's region densities")
    widest = max(len(r["blocks"]) + len(r.get("head", ())) for r in regions.values())
    width_in = max(11.0, 0.42 * widest + 6.0)
    fig = new_figure(width_in, 3.4 * len(regions) + 0.9)
    grid = fig.add_gridspec(len(regions), 2, width_ratios=[max(widest, 8), 7])
    for row, (model, data) in enumerate(regions.items()):
        layers = list(data["blocks"]) + list(data.get("head", ()))
        names = [layer["name"] for layer in data["blocks"]] + \
            [f"head {layer['name']}" for layer in data.get("head", ())]
        ax = fig.add_subplot(grid[row, 0])
        x = np.arange(len(layers))
        for k, region in enumerate(("boundary", "interior")):
            values = [_layer_region_density(layer, region) for layer in layers]
            ax.bar(x + (k - 0.5) * 0.4, values, 0.4, color=REGION_COLORS[region],
                   label=f"{region} ({100.0 * data[region]:.1f}% over blocks)")
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(layers) - 0.4)
        ax.set_ylim(0, 1.25)  # room for the legend above the bars
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylabel("density (fraction computed)")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        ax.legend(fontsize=8, loc="upper center", ncols=2, frameon=False)
        ax.set_title(f"{model}: boundary / interior = {data['boundary_interior_ratio']:.2f} "
                     f"(band {data['band']} cell)", fontsize=10)

        ax = fig.add_subplot(grid[row, 1])
        per_class = sorted(data["per_class"].items(), key=lambda item: -item[1]["density"])
        y = np.arange(len(per_class))
        values = [v["density"] for _, v in per_class]
        ax.barh(y, values, color="#55A868")
        ax.set_yticks(y, [f"{name} ({share_text(v['share'])})" for name, v in per_class],
                      fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, min(1.05, 1.2 * max(values, default=1.0) + 0.02))
        ax.set_xlabel("density on the class (mean over blocks)")
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
        ax.set_title("per ground-truth class (share of labelled cells)", fontsize=10)
    fig.suptitle("Where the model computes: class boundaries vs interiors, and per class",
                 fontsize=13, fontweight="bold")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    if out_path is not None:
        save_figure(fig, out_path)
    return fig
