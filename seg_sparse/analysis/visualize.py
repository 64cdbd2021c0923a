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

import numpy as np
from mmengine.config import Config

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

from .loading import LoadedModel, set_sampling_seed

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def find_images(image_or_dir: str) -> list[str]:
    """The image itself, or every image file under a directory (recursively, sorted)."""
    if osp.isfile(image_or_dir):
        return [image_or_dir]
    if not osp.isdir(image_or_dir):
        raise FileNotFoundError(f"image or directory '{image_or_dir}' does not exist")
    found = sorted(
        osp.join(root, name)
        for root, _, names in os.walk(image_or_dir)
        for name in names if name.lower().endswith(IMAGE_SUFFIXES)
    )
    if not found:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under "
                                f"'{image_or_dir}'")
    return found


def inference_pipeline(cfg: Config):
    """The config's test pipeline without label loading (a bare image has no labels), its
    image loader the checked one (as the Checked datasets build it)."""
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope

    from seg_sparse.datasets.transforms import CheckedLoadImageFromFile, with_checked_loading

    init_default_scope(cfg.get("default_scope", "mmseg"))
    loader = cfg.get("test_dataloader") or cfg.get("val_dataloader")
    steps = (loader or {}).get("dataset", {}).get("pipeline") or cfg.get("test_pipeline")
    if not steps:
        raise ValueError("the config has no test pipeline (test_dataloader.dataset.pipeline)")
    steps = [s for s in steps if not str(s.get("type", "")).endswith("LoadAnnotations")]
    return Compose(with_checked_loading(steps, {
        "LoadImageFromFile": (CheckedLoadImageFromFile, {})}))


def check_images_decode(images: Sequence[str]) -> None:
    """Decode every image once before anything is written, so that a bad file stops the run
    with an error naming it instead of after the figures of the images before it."""
    import mmcv

    from seg_sparse.datasets.transforms import DataDecodeError, image_size

    for path in images:
        image_size(path)  # empty / not an image: named from the header alone
        try:
            decoded = mmcv.imread(path)
        except Exception as err:  # noqa: BLE001 - OpenCV raises cv2.error for damaged data
            raise DataDecodeError(f"cannot decode image '{path}': {err}") from err
        if decoded is None:
            raise DataDecodeError(f"cannot decode image '{path}'")


def load_image(pipeline, path: str) -> tuple[dict, np.ndarray]:
    """(one-image batch for ``model.test_step``, the image as RGB). An undecodable file
    raises ``DataDecodeError`` naming it (the checked loader of the pipeline)."""
    from mmengine.dataset import pseudo_collate

    from seg_sparse.datasets.transforms import DataDecodeError

    data = pipeline(dict(img_path=path))
    if data is None:
        raise DataDecodeError(f"cannot decode image '{path}'")
    import mmcv

    image = mmcv.imread(path, channel_order="rgb")
    if image is None:
        raise DataDecodeError(f"cannot decode image '{path}'")
    return pseudo_collate([data]), image


@dataclass
class ImageFigures:
    image: str
    masks_png: str
    comparison_png: str
    densities: dict[str, tuple[float, float]]  # shown blocks (feature-resolution densities)
    head_densities: dict[str, float]  # sampled decode-head convs (empty: the head is dense)


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
) -> list[ImageFigures]:
    """Write ``<stem>_masks.png`` and ``<stem>_stochastic_vs_deterministic.png`` per image.

    ``blocks``: None (one per stage), ``'all'`` or block names (e.g. ``layer3.5``). Each
    image's stochastic masks are drawn with a generator seeded with ``seed + index`` (its
    position in ``images``), so reruns give the same pictures; the stochastic column of the
    comparison is that same draw.
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
        if "pred_sem_seg" in sample:
            size = image_geometry(sample)[0]
            image = resize_to(image, size)
            head_masks = collect_head_masks(model, size)
        prediction, legend = prediction_panel(image, sample, loaded.cfg)
        stem = osp.splitext(osp.basename(path))[0]
        masks_png = osp.join(out_dir, f"{stem}_masks.png")
        mask_overlay_figure(
            image, prediction, masks, out_path=masks_png, head_masks=head_masks, **legend,
            title=f"{osp.basename(path)}: sampled positions ({sampler} sampler, seed "
                  f"{image_seed})\n"
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
                                    {n: m.density for n, m in head_masks.items()}))
    return written

