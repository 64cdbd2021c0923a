"""The demo's pictures: masks over a validation scene (sparse backbone; sparse backbone and
head), sampler comparison, per-block densities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mmengine.dataset import pseudo_collate
from PIL import Image

from seg_sparse.sampling import set_sampling_generator
from seg_sparse.visualization import (
    CITYSCAPES_PALETTE,
    collect_head_masks,
    default_blocks,
    mask_overlay_figure,
    predict_with_masks,
    sparsity_bar_chart,
    stochastic_vs_deterministic_figure,
    use_sampler,
)

from .training import ModelRun, sampling_generator

FIGURE_NAMES = {
    "mask_overlay": "masks_over_scene.png",
    "head_mask_overlay": "masks_over_scene_sparse_head.png",
    "stochastic_vs_deterministic": "stochastic_vs_deterministic.png",
    "sparsity": "sparsity_per_block.png",
}


def _block_densities(run: ModelRun) -> dict[str, tuple[float, float, float]]:
    """block -> (conv1, conv2, conv3) densities; conv2 and conv3 both run at mask2's."""
    return {name: (d1, d2, d2) for name, (d1, d2) in run.metrics["sampling_densities"].items()}


def _most_uncertain_block(run: ModelRun) -> str:
    """The block whose val density is nearest 0.5: where Bernoulli(p) and p >= 0.5 differ most
    visibly (a block that collapsed to the grid prior looks the same under both)."""
    densities = run.metrics["sampling_densities"]
    return min(densities, key=lambda name: abs(sum(densities[name]) / 2 - 0.5))


def _head_overlay(dense: ModelRun, run: ModelRun, data: dict, out_path: Path,
                  seed: int) -> None:
    """The sparse-head model on the same scene: one block per stage and every head conv."""
    model = run.model
    set_sampling_generator(model, sampling_generator(model, seed))
    sample, masks = predict_with_masks(model, data, default_blocks(model))
    set_sampling_generator(model, None)
    image = np.asarray(Image.open(sample.img_path).convert("RGB"))
    prediction = sample.pred_sem_seg.data[0].cpu().numpy()
    m = run.metrics
    title = (f"Sparse backbone + sparse head on {Path(sample.img_path).name}\n"
             f"val mIoU {m['mIoU']:.1f}, total {m['gflops_total_sparse']:.3f} GFLOPs, head "
             f"{m['gflops_head_sparse']:.3f} (dense twin {dense.metrics['gflops_total_dense']:.3f}"
             f" / {dense.metrics['gflops_head']:.3f})")
    mask_overlay_figure(image, prediction, masks, CITYSCAPES_PALETTE, out_path, title=title,
                        head_masks=collect_head_masks(model, prediction.shape))


def write_figures(dense: ModelRun, sparse: ModelRun, sparse_head: ModelRun, out_dir: Path,
                  seed: int, image_index: int = 0) -> dict[str, str]:
    """Write the four PNGs into ``out_dir``; returns figure key -> path."""
    paths = {key: out_dir / name for key, name in FIGURE_NAMES.items()}
    model = sparse.model
    dataset = sparse.runner.test_dataloader.dataset
    data = pseudo_collate([dataset[image_index]])

    set_sampling_generator(model, sampling_generator(model, seed))
    blocks = default_blocks(model)
    compare = _most_uncertain_block(sparse)
    sample, masks = predict_with_masks(model, data, list(dict.fromkeys([*blocks, compare])))
    image = np.asarray(Image.open(sample.img_path).convert("RGB"))
    prediction = sample.pred_sem_seg.data[0].cpu().numpy()
    if image.shape[:2] != prediction.shape:  # prediction is at the original image size
        raise RuntimeError(f"prediction {prediction.shape} does not match {sample.img_path}")
    m = sparse.metrics
    title = (f"Sparse model on {Path(sample.img_path).name}: masks of one block per stage\n"
             f"val mIoU {m['mIoU']:.1f}, backbone {m['gflops_backbone_sparse']:.3f} GFLOPs "
             f"(dense twin {dense.metrics['gflops_backbone_dense']:.3f})")
    mask_overlay_figure(image, prediction, {b: masks[b] for b in blocks}, CITYSCAPES_PALETTE,
                        paths["mask_overlay"], title=title)

    with use_sampler(model, "deterministic"):
        _, deterministic = predict_with_masks(model, data, [compare])
    set_sampling_generator(model, None)
    stochastic_vs_deterministic_figure(image, compare, masks[compare], deterministic[compare],
                                       paths["stochastic_vs_deterministic"])

    _head_overlay(dense, sparse_head, data, paths["head_mask_overlay"], seed)
    head_label = "sparse backbone + sparse head"
    sparsity_bar_chart(
        {"dense twin": _block_densities(dense),
         "sparse model (stochastic sampling, seeded)": _block_densities(sparse),
         head_label: _block_densities(sparse_head)},
        paths["sparsity"],
        head={head_label: sparse_head.metrics["head_sampling_densities"]},
    )
    return {key: str(path) for key, path in paths.items()}
