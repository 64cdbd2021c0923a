"""Street-scene figures: the image, the prediction and the sampled masks laid over the image.

In every mask panel, sampled positions keep the image's colours under an amber tint and the
unsampled ones are darkened, so a glance shows where the block computed its features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .mask_collection import BlockMasks, HeadMask
from .style import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    IGNORE_COLOR,
    SAMPLED_TINT,
    TINT_ALPHA,
    UNSAMPLED_BRIGHTNESS,
    check_palette,
    new_figure,
    save_figure,
    share_text,
)

#: Which convolutions each mask decides (docs/design.md, "FLOPs convention").
MASK_ROLES = {1: "mask1 (conv1)", 2: "mask2 (conv2 + conv3)"}

MaskEntry = BlockMasks | tuple[np.ndarray, np.ndarray, float, float]


def _check_image(image_rgb: np.ndarray) -> np.ndarray:
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be an RGB array of shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


def _check_mask(mask: np.ndarray, image: np.ndarray, what: str) -> np.ndarray:
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != image.shape[:2]:
        raise ValueError(
            f"{what} has shape {mask.shape}, expected the image's (H, W) = {image.shape[:2]}: "
            "upsample masks to the image size first (see collect_block_masks)"
        )
    return np.clip(mask, 0.0, 1.0)


def resize_to(image_rgb: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The image at (H, W) = ``shape`` (bilinear; unchanged when it already is): a picture
    read from disk next to a prediction at another size (labels resized by the pipeline)."""
    if image_rgb.shape[:2] == tuple(shape[:2]):
        return image_rgb
    import mmcv

    return mmcv.imresize(image_rgb, (int(shape[1]), int(shape[0])))


def overlay_mask(image_rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Image with sampled positions (mask 1) tinted and unsampled ones (mask 0) darkened;
    soft masks blend between the two."""
    image = _check_image(image_rgb).astype(np.float32)
    mask = _check_mask(mask, image, "mask")[..., None]
    sampled = (1 - TINT_ALPHA) * image + TINT_ALPHA * SAMPLED_TINT
    unsampled = UNSAMPLED_BRIGHTNESS * image
    return (mask * sampled + (1 - mask) * unsampled).round().astype(np.uint8)


def colorize(prediction: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) colours; 255 (ignore) is black."""
    pred = np.asarray(prediction)
    if pred.ndim != 2:
        raise ValueError(f"prediction must be an (H, W) array of class indices, got {pred.shape}")
    valid = pred != 255
    top = int(pred[valid].max()) if valid.any() else -1
    palette = check_palette(palette, top + 1)
    out = np.empty((*pred.shape, 3), np.uint8)
    out[:] = IGNORE_COLOR
    out[valid] = palette[pred[valid].astype(np.int64)]
    return out


def _hide_ticks(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _class_legend(ax: Axes, prediction: np.ndarray, palette: np.ndarray,
                  class_names: Sequence[str]) -> None:
    """Legend of the classes present, largest area first, with their share of the image; for
    a drawn (H, W, 3) prediction, every class of ``class_names``."""
    ax.axis("off")
    if prediction.ndim == 3:
        handles = [Patch(facecolor=np.asarray(color) / 255.0, edgecolor="black", linewidth=0.5,
                         label=name) for name, color in zip(class_names, palette)]
        if handles:
            ax.legend(handles=handles, loc="center left", frameon=False, fontsize=9,
                      title="detected classes", title_fontsize=9, borderaxespad=0.0)
        return
    ids, counts = np.unique(prediction[prediction != 255], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    total = max(int(prediction.size), 1)
    handles = [
        Patch(facecolor=palette[ids[i]] / 255.0, edgecolor="black", linewidth=0.5,
              label=f"{class_names[ids[i]] if ids[i] < len(class_names) else ids[i]}"
              f"  {share_text(counts[i] / total)}")
        for i in order
    ]
    if handles:
        ax.legend(handles=handles, loc="center left", frameon=False, fontsize=9,
                  title="predicted classes", title_fontsize=9, borderaxespad=0.0)


def _mask_legend(ax: Axes, lines: Sequence[str] = (), with_key: bool = True) -> None:
    """Key of the mask colours (``with_key``) and a few lines of text about the row."""
    ax.axis("off")
    if lines:
        ax.text(0.0, 0.45 if with_key else 0.75, "\n".join(lines), transform=ax.transAxes,
                va="top", fontsize=10)
    if not with_key:
        return
    handles = [
        Patch(facecolor=((1 - TINT_ALPHA) * 0.6 + TINT_ALPHA * SAMPLED_TINT / 255.0),
              edgecolor="black", linewidth=0.5, label="sampled (computed)"),
        Patch(facecolor=(0.6 * UNSAMPLED_BRIGHTNESS,) * 3, edgecolor="black", linewidth=0.5,
              label="not sampled (interpolated)"),
    ]
    ax.legend(handles=handles, loc="upper left", frameon=False, fontsize=9,
              borderaxespad=0.0)


def _mask_title(block: str, which: int, density: float) -> str:
    return f"{block}  {MASK_ROLES[which]}: {100.0 * density:.1f}% sampled"


def _panel_size(image: np.ndarray, width_in: float = 4.6) -> tuple[float, float]:
    h, w = image.shape[:2]
    return width_in, width_in * h / w


#: Layout in inches: side column for legends, space for a panel title, figure title.
SIDE_IN, PANEL_TITLE_IN, TOP_IN = 2.6, 0.5, 0.75


def _panel_grid(image: np.ndarray, rows: int) -> tuple[Figure, Any]:
    """Figure with ``rows`` x (2 image panels + a legend column) sized to the image's aspect."""
    pw, ph = _panel_size(image)
    width, height = 2 * pw + SIDE_IN + 0.2, rows * (ph + PANEL_TITLE_IN) + TOP_IN
    fig = new_figure(width, height)
    grid = fig.add_gridspec(
        rows, 3, width_ratios=[pw, pw, SIDE_IN], wspace=0.04,
        hspace=PANEL_TITLE_IN / ph, left=0.1 / width, right=1 - 0.1 / width,
        top=1 - (TOP_IN + PANEL_TITLE_IN - 0.1) / height, bottom=0.1 / height,
    )
    return fig, grid


def _as_block_masks(name: str, entry: MaskEntry) -> BlockMasks:
    if isinstance(entry, BlockMasks):
        return entry
    try:
        mask1, mask2, d1, d2 = entry
    except (TypeError, ValueError):
        raise ValueError(
            f"masks[{name!r}] must be (mask1, mask2, density1, density2), got {type(entry)}"
        ) from None
    return BlockMasks(np.asarray(mask1), np.asarray(mask2), float(d1), float(d2))


def mask_overlay_figure(
    image_rgb: np.ndarray,
    prediction: np.ndarray,
    masks: Mapping[str, MaskEntry],
    palette: np.ndarray | Sequence[Sequence[int]] = CITYSCAPES_PALETTE,
    out_path: str | Path | None = None,
    class_names: Sequence[str] = CITYSCAPES_CLASSES,
    title: str | None = None,
    head_masks: Mapping[str, HeadMask] | None = None,
) -> Figure:
    """One figure per street scene.

    Row 1: the image and the colour-coded prediction (legend: classes present). One row per
    block of ``masks`` (block name -> (mask1, mask2, density1, density2), masks (H, W) in
    [0, 1] at image size, e.g. from :func:`collect_block_masks`): mask1 and mask2 over the
    image, titled with block name and density. Written to ``out_path`` (PNG) when given.
    ``prediction`` may also be a picture already drawn, (H, W, 3) (detections from
    :func:`~seg_sparse.visualization.draw_detections`); its legend then lists ``class_names``
    in ``palette``'s colours. ``head_masks`` (sampled decode-head conv -> :class:`HeadMask`,
    from :func:`~seg_sparse.visualization.collect_head_masks`) add rows of two head convs
    each.
    """
    image = _check_image(image_rgb)
    prediction = np.asarray(prediction)
    if prediction.shape[:2] != image.shape[:2] or prediction.ndim not in (2, 3):
        raise ValueError(f"prediction has shape {prediction.shape}, expected the image's "
                         f"(H, W) = {image.shape[:2]}, or (H, W, 3) for a drawn picture")
    if not masks and not head_masks:
        raise ValueError("masks is empty: give at least one block's masks")
    entries = {name: _as_block_masks(name, e) for name, e in masks.items()}
    colored = _check_image(prediction) if prediction.ndim == 3 else \
        colorize(prediction, np.asarray(palette))
    palette = np.asarray(palette).reshape(-1, 3) if prediction.ndim == 3 else \
        check_palette(palette, 1)

    head = list((head_masks or {}).items())
    head_rows = [head[i:i + 2] for i in range(0, len(head), 2)]
    fig, grid = _panel_grid(image, 1 + len(entries) + len(head_rows))
    fig.suptitle(title or "Where the sparse backbone computes features", fontsize=13,
                 fontweight="bold")

    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(image)
    ax.set_title("input image", fontsize=10)
    _hide_ticks(ax)
    ax = fig.add_subplot(grid[0, 1])
    ax.imshow(colored, interpolation="nearest")
    ax.set_title("prediction", fontsize=10)
    _hide_ticks(ax)
    _class_legend(fig.add_subplot(grid[0, 2]), prediction, palette, class_names)

    for row, (name, entry) in enumerate(entries.items(), start=1):
        for col, (mask, density, which) in enumerate(
            ((entry.mask1, entry.density1, 1), (entry.mask2, entry.density2, 2))
        ):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(overlay_mask(image, _check_mask(mask, image, f"masks[{name!r}]")),
                      interpolation="nearest")
            ax.set_title(_mask_title(name, which, density), fontsize=10)
            _hide_ticks(ax)
        lines = [f"block {name}",
                 f"mean density {50.0 * (entry.density1 + entry.density2):.1f}%"]
        _mask_legend(fig.add_subplot(grid[row, 2]), lines, with_key=row == 1)

    for row, pair in enumerate(head_rows, start=1 + len(entries)):
        for col, (name, entry) in enumerate(pair):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(overlay_mask(image, _check_mask(entry.mask, image,
                                                      f"head_masks[{name!r}]")),
                      interpolation="nearest")
            ax.set_title(f"decode head {name}: {100.0 * entry.density:.1f}% sampled",
                         fontsize=10)
            _hide_ticks(ax)
        if len(pair) == 1:
            fig.add_subplot(grid[row, 1]).axis("off")
        if row > 1 + len(entries):  # the head's summary stands next to its first row only
            fig.add_subplot(grid[row, 2]).axis("off")
            continue
        lines = ["decode head (sampled convs)",
                 f"mean density {100.0 * sum(e.density for _, e in head) / len(head):.1f}%"]
        _mask_legend(fig.add_subplot(grid[row, 2]), lines, with_key=not entries and row == 1)

    if out_path is not None:
        save_figure(fig, out_path)
    return fig


def stochastic_vs_deterministic_figure(
    image_rgb: np.ndarray,
    block: str,
    stochastic: MaskEntry,
    deterministic: MaskEntry,
    out_path: str | Path | None = None,
) -> Figure:
    """The same block of the same model under two samplers, side by side: columns stochastic
    (Bernoulli(p) draw, the paper's inference) and deterministic (p >= 0.5); rows mask1, mask2.
    """
    image = _check_image(image_rgb)
    columns = {
        "stochastic: Bernoulli(p)": _as_block_masks(block, stochastic),
        "deterministic: p >= 0.5": _as_block_masks(block, deterministic),
    }
    fig, grid = _panel_grid(image, 2)
    fig.suptitle(f"Block {block}: stochastic vs deterministic sampling (same trained model)",
                 fontsize=12, fontweight="bold")
    for col, (label, entry) in enumerate(columns.items()):
        for row, (mask, density, which) in enumerate(
            ((entry.mask1, entry.density1, 1), (entry.mask2, entry.density2, 2))
        ):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(overlay_mask(image, _check_mask(mask, image, f"{label} {MASK_ROLES[which]}")),
                      interpolation="nearest")
            ax.set_title(f"{label}\n{MASK_ROLES[which]}: {100.0 * density:.1f}% sampled",
                         fontsize=10)
            _hide_ticks(ax)
    _mask_legend(fig.add_subplot(grid[0, 2]), [f"block {block}"])
    _mask_legend(fig.add_subplot(grid[1, 2]), ["same block,", "same image,", "same weights"],
                 with_key=False)
    if out_path is not None:
        save_figure(fig, out_path)
    return fig
