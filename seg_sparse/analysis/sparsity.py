"""Per-block sparsity (appendix): density of conv1, conv2 and conv3 of every residual block.

conv1 runs at the density d1 of mask 1; conv2 at d2 (mask 2); conv3 also at d2, because it is
1x1 and is computed only where mask 2 sampled (docs/design.md, "FLOPs convention"). Dense
blocks report 1. A sampled decode head (``SparseFCNHead``) adds the density of each of its
convs (docs/sparse_head.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .loading import Evaluation, LoadedModel, evaluate
from .output import table

CONVS = ("conv1", "conv2", "conv3")


@dataclass
class BlockSparsity:
    name: str  # relative to the backbone, e.g. "layer3.2"
    d1: float
    d2: float

    @property
    def conv_densities(self) -> dict[str, float]:
        """Fraction of positions computed by conv1 / conv2 / conv3."""
        return {"conv1": self.d1, "conv2": self.d2, "conv3": self.d2}


@dataclass
class ModelSparsity:
    """Per-block densities of one checkpoint over the validation images it was measured on."""

    label: str
    config: str
    checkpoint: str
    evaluation: Evaluation
    blocks: list[BlockSparsity]
    head: dict[str, float]  # sampled decode-head conv -> density (empty: dense head)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "config": self.config,
            "checkpoint": self.checkpoint,
            **self.evaluation.summary(),
            "blocks": [{"name": b.name, **b.conv_densities} for b in self.blocks],
            "head": [{"name": n, "density": d} for n, d in self.head.items()],
        }


def measure_sparsity(loaded: LoadedModel, num_images: int | None = None,
                     label: str | None = None, seed: int | None = 0) -> ModelSparsity:
    """Evaluate ``loaded`` and read its per-block densities (blocks in forward order);
    stochastic masks drawn with ``seed``."""
    result = evaluate(loaded, num_images, seed)
    blocks = [BlockSparsity(b.name, *result.densities.get(b.name, (1.0, 1.0)))
              for b in result.flops.blocks]
    return ModelSparsity(label or default_label(loaded.checkpoint), loaded.config_path,
                         loaded.checkpoint, result, blocks,
                         dict(result.flops.head_densities or {}))


def default_label(checkpoint: str) -> str:
    """``<run dir>/<file>`` of a checkpoint: tells runs apart that share file names."""
    import os.path as osp

    parent = osp.basename(osp.dirname(osp.abspath(checkpoint)))
    return f"{parent}/{osp.basename(checkpoint)}" if parent else osp.basename(checkpoint)


def format_sparsity_table(models: list[ModelSparsity]) -> str:
    """Rows: blocks; columns: conv1/conv2/conv3 density of each model."""
    header = ["block"] + [f"{c} [{i}]" for i in range(len(models)) for c in CONVS]
    names = [b.name for b in models[0].blocks]
    by_model = [{b.name: b for b in m.blocks} for m in models]
    rows = []
    for name in names:
        row: list[Any] = [name]
        for blocks in by_model:
            block = blocks.get(name)
            row += [block.conv_densities[c] if block else "-" for c in CONVS]
        rows.append(row)
    head_names = list(dict.fromkeys(n for m in models for n in m.head))
    head_table = ""
    if head_names:
        head_rows = [[f"head {n}"] + [m.head.get(n, "-") for m in models] for n in head_names]
        head_table = ("\nSampled decode-head convs: fraction of positions computed\n"
                      + table(["conv"] + [f"[{i}]" for i in range(len(models))], head_rows,
                              digits=3))
    legend = "\n".join(
        f"[{i}] {m.label}: {m.evaluation.metric} {m.evaluation.miou:.2f}, backbone GFLOPs "
        f"{m.evaluation.gflops_backbone:.3f} (dense {m.evaluation.flops.backbone_dense:.3f}), "
        f"head {m.evaluation.gflops_head:.3f} (dense {m.evaluation.flops.head_gflops:.3f}), "
        f"mean density {m.evaluation.mean_density:.3f}, {m.evaluation.num_images} images"
        for i, m in enumerate(models))
    return ("Fraction of positions computed per conv (1 = dense)\n"
            + table(header, rows, digits=3) + head_table + "\n" + legend)
