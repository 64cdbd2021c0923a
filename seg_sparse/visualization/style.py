"""Shared look of every figure: Cityscapes palette, mask tint, saving without pyplot.

Figures are built as :class:`matplotlib.figure.Figure` objects and written by the Agg canvas,
so nothing here touches pyplot's global state or needs a display.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mmseg.datasets import CityscapesDataset

from seg_sparse.fileio import atomic_write_bytes

#: Cityscapes trainId class names and colours (mmseg's own metainfo, not a copy).
CITYSCAPES_CLASSES: tuple[str, ...] = tuple(CityscapesDataset.METAINFO["classes"])
CITYSCAPES_PALETTE: np.ndarray = np.asarray(CityscapesDataset.METAINFO["palette"], np.uint8)

#: Colour laid over sampled positions, and how strongly; unsampled positions are darkened.
SAMPLED_TINT = np.array([255, 214, 0], np.float32)  # amber: readable on road, sky and cars
TINT_ALPHA = 0.35
UNSAMPLED_BRIGHTNESS = 0.25
#: Colour of the ignore label (255) in predictions / ground truth.
IGNORE_COLOR = np.array([0, 0, 0], np.uint8)

DPI = 100


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure attached to the Agg canvas (no display, no pyplot)."""
    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out_path: str | Path) -> Path:
    """Write ``fig`` as PNG atomically (a reader never sees a half-written file), creating the
    parent folder; clear error if it cannot be written."""
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".png":
        raise ValueError(f"figures are written as PNG; got output path {str(out_path)!r}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    try:
        atomic_write_bytes(out_path, buffer.getvalue())
    except OSError as err:
        raise OSError(f"cannot write figure to {str(out_path)!r}: {err}") from err
    return out_path


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """The rendered figure as an (H, W, 3) uint8 RGB array (what mmengine's ``Visualizer``
    backends take as an image), at the same DPI and background as :func:`save_figure`."""
    fig.set_dpi(DPI)
    fig.set_facecolor("white")
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def share_text(fraction: float) -> str:
    """A share of an image for a legend: '<1%' below one percent, else whole percents."""
    return "<1%" if fraction < 0.01 else f"{100.0 * fraction:.0f}%"


def check_palette(palette: np.ndarray | list, num_classes: int) -> np.ndarray:
    """(num_classes, 3) uint8 palette, with a clear error when it has too few colours."""
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[1] != 3:
        raise ValueError(f"palette must have shape (N, 3), got {palette.shape}")
    if len(palette) < num_classes:
        raise ValueError(
            f"palette has {len(palette)} colours but the prediction holds class index "
            f"{num_classes - 1}"
        )
    return palette.astype(np.uint8)
