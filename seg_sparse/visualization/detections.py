"""A detector's prediction panel: its confident boxes drawn over the image, in class colours."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .figures import _check_image
from .style import check_palette

#: Detections drawn in the prediction panel (mmdet's visualizer default).
SCORE_THRESHOLD = 0.3


def draw_detections(image_rgb: np.ndarray, bboxes: np.ndarray, labels: np.ndarray,
                    palette: np.ndarray) -> np.ndarray:
    """The image with one rectangle per box ``(x1, y1, x2, y2)`` in its class colour."""
    from PIL import Image, ImageDraw

    picture = Image.fromarray(_check_image(image_rgb))
    draw = ImageDraw.Draw(picture)
    width = max(1, round(min(picture.size) / 150))
    colors = check_palette(palette, int(np.max(labels, initial=0)) + 1)
    for box, label in zip(np.asarray(bboxes, np.float64), np.asarray(labels, np.int64)):
        draw.rectangle([float(v) for v in box], outline=tuple(int(c) for c in colors[label]),
                       width=width)
    return np.asarray(picture)


def detection_classes(cfg: Mapping) -> tuple[tuple[str, ...], np.ndarray]:
    """Class names and colours of a detection config: its dataset's ``metainfo`` (else COCO's
    80 classes), colours from the metainfo palette, COCO's, or matplotlib's tab20."""
    from matplotlib import colormaps
    from mmdet.datasets import CocoDataset

    loader = cfg.get("test_dataloader") or cfg.get("val_dataloader") or {}
    metainfo = loader.get("dataset", {}).get("metainfo") or {}
    coco = CocoDataset.METAINFO
    classes = tuple(metainfo.get("classes") or coco["classes"])
    palette = metainfo.get("palette") or (coco["palette"] if classes == coco["classes"] else None)
    if palette is None:
        tab = colormaps["tab20"].colors
        palette = [[round(255 * c) for c in tab[i % len(tab)]] for i in range(len(classes))]
    return classes, np.asarray(palette, np.uint8)


def detection_panel(image_rgb: np.ndarray, instances: Any, cfg: Mapping,
                    score_threshold: float = SCORE_THRESHOLD) -> tuple[np.ndarray, dict]:
    """(the image with the boxes of ``instances`` (mmdet's ``pred_instances``) scoring at least
    ``score_threshold`` drawn, ``class_names`` / ``palette`` of the classes drawn, for the
    legend of :func:`~seg_sparse.visualization.mask_overlay_figure`)."""
    classes, palette = detection_classes(cfg)
    keep = (instances.scores >= score_threshold).cpu().numpy()
    bboxes, labels = instances.bboxes.cpu().numpy()[keep], instances.labels.cpu().numpy()[keep]
    present = sorted(set(labels.tolist()))
    return draw_detections(image_rgb, bboxes, labels, palette), {
        "class_names": [classes[i] for i in present], "palette": palette[present]}


def prediction_panel(image_rgb: np.ndarray, sample: Any, cfg: Mapping | None = None,
                     dataset_meta: Mapping | None = None) -> tuple[np.ndarray, dict]:
    """(what the prediction panel of :func:`~seg_sparse.visualization.mask_overlay_figure`
    shows for ``sample``, its legend keywords): a SegDataSample's class map, named and coloured
    by ``dataset_meta`` (``classes`` / ``palette``; default Cityscapes'), or a DetDataSample's
    confident boxes over the image (:func:`detection_panel`, classes of ``cfg``)."""
    if "pred_sem_seg" in sample:
        meta = dataset_meta or {}
        legend = {}
        if meta.get("classes") and meta.get("palette"):
            legend = {"class_names": tuple(meta["classes"]),
                      "palette": np.asarray(meta["palette"], np.uint8)}
        return sample.pred_sem_seg.data[0].cpu().numpy(), legend
    return detection_panel(image_rgb, sample.pred_instances, cfg or {})
