"""Mask pictures on street scenes: where each block computed, and stochastic vs deterministic.

For each image: one figure with the image, the prediction and mask1 / mask2 of the chosen
blocks over the image, and the mask of every conv of a sampled decode head
(:func:`seg_sparse.visualization.mask_overlay_figure`), and one figure of
a single block under the stochastic (Bernoulli(p), the paper) and the deterministic (p >= 0.5)
test-time sampler (the same weights; only the test-time draw differs). For a detector the
prediction panel shows its confident boxes (:func:`seg_sparse.visualization.detection_panel`).
"""

from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence
from dataclasses import dataclass

from seg_sparse.apis.inference import inference_pipeline, load_image
from seg_sparse.datasets.image_files import check_images_decode
from seg_sparse.visualization import (
    collect_head_masks,
    image_geometry,
    mask_overlay_figure,
    predict_with_masks,
    prediction_panel,
    resize_to,
    resolve_blocks,
    sampling_blocks,
    stochastic_vs_deterministic_figure,
    use_sampler,
)
from seg_sparse.visualization.detections import SCORE_THRESHOLD

from .loading import LoadedModel, set_sampling_seed


@dataclass
class ImageFigures:
    image: str
    masks_png: str
    comparison_png: str
    densities: dict[str, tuple[float, float]]  # shown blocks (feature-resolution densities)
    head_densities: dict[str, float]  # sampled decode-head convs (empty: the head is dense)
    #: detection: (boxes drawn, detections, score threshold); None for segmentation
    boxes: tuple[int, int, float] | None = None


def default_comparison_block(blocks: Sequence[str]) -> str:
    """The stage-3 block among the shown ones (the dilated stage that holds most of the
    computation), else the first shown block."""
    return next((b for b in blocks if b.startswith("layer3")), blocks[0])


def visualize_images(
    loaded: LoadedModel,
    images: Sequence[str],
    out_dir: str,
    blocks: Sequence[str] | str | None = None,
    compare_block: str | None = None,
    seed: int = 0,
    progress: bool = True,
    score_threshold: float = SCORE_THRESHOLD,
) -> list[ImageFigures]:
    """Write ``<stem>_masks.png`` and ``<stem>_stochastic_vs_deterministic.png`` per image.

    ``blocks``: None (one per stage), ``'all'`` or block names (e.g. ``layer3.5``). Each
    image's stochastic masks are drawn with a generator seeded with ``seed + index`` (its
    position in ``images``), so reruns give the same pictures; the stochastic column of the
    comparison is that same draw. A detector's prediction panel draws its detections scoring
    at least ``score_threshold``; the figure's title says how many of how many.
    """
    from tqdm import tqdm

    model = loaded.model
    shown = resolve_blocks(model, blocks)
    compare = resolve_blocks(model, [compare_block or default_comparison_block(shown)])[0]
    pipeline = inference_pipeline(loaded.cfg)
    check_images_decode(images)
    os.makedirs(out_dir, exist_ok=True)
    sampler = sampling_blocks(model)[compare].sampler.name
    title_model = osp.splitext(osp.basename(loaded.config_path))[0]
    written = []
    for index, path in enumerate(tqdm(images, desc="visualizing", unit="img",
                                      disable=not progress)):
        image_seed = seed + index
        data, image = load_image(pipeline, path)
        set_sampling_seed(model, image_seed)
        sample, masks = predict_with_masks(model, data, shown)
        head_masks = {}
        boxes = None
        if "pred_sem_seg" in sample:
            size = image_geometry(sample)[0]
            image = resize_to(image, size)
            head_masks = collect_head_masks(model, size)
        else:
            instances = sample.pred_instances
            boxes = (int((instances.scores >= score_threshold).sum()), len(instances),
                     score_threshold)
        prediction, legend = prediction_panel(image, sample, loaded.cfg,
                                              score_threshold=score_threshold)
        stem = osp.splitext(osp.basename(path))[0]
        masks_png = osp.join(out_dir, f"{stem}_masks.png")
        drawn = "" if boxes is None else f"; {describe_boxes(boxes)}"
        mask_overlay_figure(
            image, prediction, masks, out_path=masks_png, head_masks=head_masks, **legend,
            title=f"{osp.basename(path)}: sampled positions ({sampler} sampler, seed "
                  f"{image_seed}){drawn}\n"
                  f"{title_model}")
        pair = []
        for name in ("stochastic", "deterministic"):
            set_sampling_seed(model, image_seed)  # the same draw as the figure above
            with use_sampler(model, name):
                pair.append(predict_with_masks(model, data, [compare])[1][compare])
        comparison_png = osp.join(out_dir, f"{stem}_stochastic_vs_deterministic.png")
        stochastic_vs_deterministic_figure(image, compare, *pair, out_path=comparison_png)
        set_sampling_seed(model, None)
        written.append(ImageFigures(path, masks_png, comparison_png,
                                    {n: (m.density1, m.density2) for n, m in masks.items()},
                                    {n: m.density for n, m in head_masks.items()}, boxes))
    return written


def describe_boxes(boxes: tuple[int, int, float]) -> str:
    """'3 of 100 detections drawn (score >= 0.3)'."""
    drawn, total, threshold = boxes
    return f"{drawn} of {total} detections drawn (score >= {threshold:g})"
