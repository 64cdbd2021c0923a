"""Per-block sparsity (appendix): density of conv1, conv2 and conv3 of every residual block.

conv1 runs at the density d1 of mask 1; conv2 at d2 (mask 2); conv3 also at d2, because it is
1x1 and is computed only where mask 2 sampled (docs/design.md, "FLOPs convention"). Dense
blocks report 1. A sampled decode head (``SparseFCNHead``) adds the density of each of its
convs (docs/sparse_head.md). On segmentation data the same pass measures where the model
computes: density on class boundaries vs interiors and per class (:mod:`.sparsity_regions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .loading import Evaluation, LoadedModel, evaluate
from .output import table
from .sparsity_regions import DEFAULT_BAND, REGIONS, RegionCollector, RegionSparsity

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
    #: density on class boundaries / interiors and per class (None: no labels, e.g. detection,
    #: or no sampling block)
    regions: RegionSparsity | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "config": self.config,
            "checkpoint": self.checkpoint,
            **self.evaluation.summary(),
            "blocks": [{"name": b.name, **b.conv_densities} for b in self.blocks],
            "head": [{"name": n, "density": d} for n, d in self.head.items()],
            "regions": None if self.regions is None else self.regions.to_dict(),
        }


def measure_sparsity(loaded: LoadedModel, num_images: int | None = None,
                     label: str | None = None, seed: int | None = 0,
                     band: int = DEFAULT_BAND) -> ModelSparsity:
    """Evaluate ``loaded`` and read its per-block densities (blocks in forward order) and, in
    the same pass, its densities on class boundaries (``band`` cells wide) and interiors;
    stochastic masks drawn with ``seed``."""
    collector = RegionCollector(loaded.model, band)
    result = evaluate(loaded, num_images, seed, on_batch=collector)
    blocks = [BlockSparsity(b.name, *result.densities.get(b.name, (1.0, 1.0)))
              for b in result.flops.blocks]
    return ModelSparsity(label or default_label(loaded.checkpoint), loaded.config_path,
                         loaded.checkpoint, result, blocks,
                         dict(result.flops.head_densities or {}), collector.result)


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
            + table(header, rows, digits=3) + head_table + format_region_tables(models)
            + "\n" + legend)


def format_region_tables(models: list[ModelSparsity]) -> str:
    """Per model with labels: every block's d1 / d2 on class boundaries and interiors and the
    boundary / interior ratio of (d1 + d2) / 2; then the density per ground-truth class."""
    measured = [(i, m.regions) for i, m in enumerate(models) if m.regions is not None]
    if not measured:
        return ""
    parts = []
    for i, regions in measured:
        rows: list[list[Any]] = []
        for name, counts in [*regions.blocks.items(), *((f"head {n}", c)
                                                        for n, c in regions.head.items())]:
            cells = [c.density(r) for c in counts for r in REGIONS]
            if len(counts) == 1:  # a head conv: one mask
                cells = cells + ["-", "-"]
            boundary = sum(c.density("boundary") for c in counts) / len(counts)
            interior = sum(c.density("interior") for c in counts) / len(counts)
            rows.append([name, *cells, boundary / interior if interior > 0 else "-"])
        means = [sum(c[m].density(r) for c in regions.blocks.values()) / len(regions.blocks)
                 for m in (0, 1) for r in REGIONS]
        rows.append(["mean over blocks", *means, regions.ratio])
        images = f"{regions.images} image{'s' if regions.images != 1 else ''}"
        parts.append(
            f"\n[{i}] Density on class boundaries vs interiors (band: {regions.band} cell of each "
            f"mask's grid on either side of a class edge; {images}; ratio = "
            f"boundary / interior of (d1 + d2) / 2): boundary {regions.density('boundary'):.3f}"
            f", interior {regions.density('interior'):.3f}\n"
            + table(["block", "d1 boundary", "d1 interior", "d2 boundary", "d2 interior",
                     "ratio"], rows, digits=3))
    classes = list(dict.fromkeys(c for _, r in measured for c in r.summary()["per_class"]))
    summaries = {i: r.summary()["per_class"] for i, r in measured}
    class_rows = [[name] + [summaries[i][name]["density"] if name in summaries[i] else "-"
                            for i, _ in measured]
                  + [next(s[name]["share"] for s in summaries.values() if name in s)]
                  for name in classes]
    parts.append("\nDensity per ground-truth class (mean over sampling blocks of (d1 + d2) / 2)"
                 "\n" + table(["class"] + [f"[{i}]" for i, _ in measured] + ["share of cells"],
                              class_rows, digits=3))
    return "\n".join(parts)
