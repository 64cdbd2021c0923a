"""Pruning compatibility (appendix): global unstructured L1 pruning of the backbone's convs.

``torch.nn.utils.prune.global_unstructured`` with ``L1Unstructured`` zeroes the given fraction
of the smallest-magnitude weights over all backbone convs together (stem, conv1/conv2/conv3,
downsample). DCN offset convs and mask predictors are left intact: they decide *where* to
compute, and pruning them would change the sampling rather than the convolutions.

GFLOPs of a pruned model count only non-zero weights: each conv's MACs are scaled by the
fraction of its weights that are non-zero, on top of the sampling densities (docs/design.md,
"FLOPs convention"). Every ratio starts again from the unpruned checkpoint.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from seg_sparse.flops import FlopsReport
from seg_sparse.outputs import table
from seg_sparse.sampling import MaskPredictor

from .loading import Evaluation, LoadedModel, evaluate

#: Names of the DCN offset convs (ours, and mmcv's DeformConv2dPack).
OFFSET_CONV_NAMES = ("conv2_offset", "conv_offset")
#: Roles of a block in the FLOPs profile that are single prunable conv weights.
PRUNED_ROLES = ("conv1", "conv2", "conv3", "downsample")
DEFAULT_RATIOS = (0.5, 0.55, 0.6, 0.66, 0.7, 0.75)


def _is_conv(module: nn.Module) -> bool:
    """Convs incl. torchvision's DeformConv2d (a 4-D weight and a kernel size)."""
    weight = module._parameters.get("weight")
    return (isinstance(module, nn.modules.conv._ConvNd)
            or (weight is not None and weight.dim() == 4 and hasattr(module, "kernel_size")))


def prunable_convs(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name relative to the backbone, conv) of every backbone conv that gets pruned: all of
    them except DCN offset convs and the convs inside mask predictors."""
    backbone = getattr(model, "backbone", model)
    predictors = [m for m in backbone.modules() if isinstance(m, MaskPredictor)]
    excluded = {id(m) for p in predictors for m in p.modules()}
    return [
        (name, m) for name, m in backbone.named_modules()
        if _is_conv(m) and id(m) not in excluded
        and name.rsplit(".", 1)[-1] not in OFFSET_CONV_NAMES
    ]


@dataclass
class PruneStats:
    """Parameter counts after pruning (conv weights of the backbone and the whole model)."""

    ratio: float
    conv_weights: int
    conv_weights_nonzero: int
    model_params: int
    model_params_nonzero: int

    @property
    def conv_sparsity(self) -> float:
        """Fraction of the prunable backbone conv weights that are zero."""
        return 1.0 - self.conv_weights_nonzero / self.conv_weights


def prune_backbone(model: nn.Module, ratio: float) -> PruneStats:
    """Zero ``ratio`` of the prunable backbone conv weights (smallest |w| globally), in place
    and permanently (the pruning re-parametrisation is removed again)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must be in [0, 1), got {ratio}")
    convs = prunable_convs(model)
    if not convs:
        raise ValueError("the model's backbone has no conv to prune")
    if ratio > 0:
        params = [(m, "weight") for _, m in convs]
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=ratio)
        for module, name in params:
            prune.remove(module, name)
    weights = [m.weight for _, m in convs]
    return PruneStats(
        ratio=ratio,
        conv_weights=sum(w.numel() for w in weights),
        conv_weights_nonzero=sum(int(w.count_nonzero()) for w in weights),
        model_params=sum(p.numel() for p in model.parameters()),
        model_params_nonzero=sum(int(p.count_nonzero()) for p in model.parameters()),
    )


def _nonzero_fraction(modules: Sequence[nn.Module]) -> float:
    weights = [m.weight for m in modules]
    total = sum(w.numel() for w in weights)
    return sum(int(w.count_nonzero()) for w in weights) / total if total else 1.0


def nonzero_weight_flops(report: FlopsReport, model: nn.Module) -> FlopsReport:
    """``report`` with every pruned conv's MACs scaled by its fraction of non-zero weights.

    Block convs are scaled one by one; the convs outside blocks (the stem) together, weighted
    by their weight counts, which is exact when they run at one resolution (true of the ResNet
    and ResNetV1c stems: only the first conv strides, pooling comes after).
    """
    backbone = getattr(model, "backbone", model)
    blocks = []
    for block in report.blocks:
        module = backbone.get_submodule(block.name)
        macs = dict(block.macs)
        for role in PRUNED_ROLES:
            part = getattr(module, role, None)
            if role in macs and part is not None:
                convs = [m for _, m in prunable_convs(part)] if role == "downsample" else [part]
                macs[role] = round(macs[role] * _nonzero_fraction(convs))
        blocks.append(replace(block, macs=macs))
    block_names = [b.name for b in report.blocks]
    outside = [m for name, m in prunable_convs(model)
               if not any(name == b or name.startswith(b + ".") for b in block_names)]
    other = round(report.backbone_other * _nonzero_fraction(outside))
    return replace(report, blocks=tuple(blocks), backbone_other=other)


@dataclass
class PruneRow:
    stats: PruneStats
    evaluation: Evaluation
    flops: FlopsReport  # counting non-zero weights only

    def to_dict(self) -> dict[str, Any]:
        def executed(attr_sparse: str, attr_dense: str) -> float:
            value = getattr(self.flops, attr_sparse)
            return getattr(self.flops, attr_dense) if value is None else value

        return {
            "ratio": self.stats.ratio,
            "conv_weights": self.stats.conv_weights,
            "conv_weights_nonzero": self.stats.conv_weights_nonzero,
            "conv_sparsity": self.stats.conv_sparsity,
            "model_params": self.stats.model_params,
            "model_params_nonzero": self.stats.model_params_nonzero,
            self.evaluation.metric: self.evaluation.miou,
            "gflops_backbone": executed("backbone_sparse", "backbone_dense"),
            "gflops_total": executed("total_sparse", "total_dense"),
            "gflops_backbone_unpruned": self.evaluation.gflops_backbone,
            "mean_density": self.evaluation.mean_density,
            "num_images": self.evaluation.num_images,
        }


@dataclass
class PruneResult:
    config: str
    checkpoint: str
    rows: list[PruneRow]

    @property
    def metric(self) -> str:
        """Name of the accuracy in the rows: mIoU, or mAP for detection."""
        return self.rows[0].evaluation.metric

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "metric": self.metric,
            "checkpoint": self.checkpoint,
            "pruned": "backbone conv weights except DCN offset convs and mask predictors "
                      "(global L1 unstructured)",
            "gflops": "multiply-accumulates / 1e9 counting only non-zero weights, at the "
                      "measured sampling densities",
            "rows": [r.to_dict() for r in self.rows],
        }

    def format_table(self) -> str:
        metric = self.metric
        header = ["ratio", "conv sparsity", "params (M)", "nonzero params (M)",
                  "GFLOPs backbone", "GFLOPs total", metric]
        rows = []
        for row in self.rows:
            d = row.to_dict()
            rows.append([f"{d['ratio']:.2f}", f"{d['conv_sparsity']:.3f}",
                         f"{d['model_params'] / 1e6:.3f}",
                         f"{d['model_params_nonzero'] / 1e6:.3f}",
                         d["gflops_backbone"], d["gflops_total"], f"{d[metric]:.2f}"])
        title = ("Global L1 pruning of backbone convs (GFLOPs count non-zero weights only; "
                 f"{self.rows[0].evaluation.num_images} images)")
        return title + "\n" + table(header, rows)


def run_pruning(loaded: LoadedModel, ratios: Sequence[float] = DEFAULT_RATIOS,
                num_images: int | None = None, seed: int | None = 0,
                on_ratio: Callable[[int, float], None] | None = None) -> PruneResult:
    """Evaluate the unpruned model (ratio 0) and each ratio, every one with the same sampling
    seed (so only the pruning differs); the model's weights are restored afterwards."""
    for ratio in ratios:
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"pruning ratios must lie in (0, 1), got {ratio}")
    model = loaded.model
    original = copy.deepcopy(model.state_dict())
    rows = []
    try:
        for i, ratio in enumerate([0.0, *ratios]):
            if on_ratio is not None:
                on_ratio(i, ratio)
            with torch.no_grad():
                model.load_state_dict(original)
            stats = prune_backbone(model, ratio)
            result = evaluate(loaded, num_images, seed)
            rows.append(PruneRow(stats, result, nonzero_weight_flops(result.flops, model)))
    finally:
        model.load_state_dict(original)
    return PruneResult(loaded.config_path, loaded.checkpoint, rows)
