"""Rasterise a procedural scene into a Cityscapes annotation, its label maps and an image.

Label maps come from cityscapesscripts' own rasteriser (``createLabelImage`` /
``createInstanceImage``) applied to the very polygons written to ``*_gtFine_polygons.json``, so
converting that JSON with ``json2labelImg`` reproduces the written label maps exactly.
"""

from __future__ import annotations

import json
from functools import cache

import numpy as np
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from PIL import Image, ImageDraw

from .cs_labels import label_id
from .geometry import to_pixel_polygon
from .scene import SceneObject

# Grey-level noise amplitudes (fine, medium, coarse) per class: gives each class a texture
# (leafy vegetation, grainy asphalt, smooth sky) without changing its mean colour.
TEXTURE = {
    "road": (5.0, 4.0, 6.0), "sidewalk": (5.0, 4.0, 5.0), "building": (3.0, 4.0, 8.0),
    "wall": (4.0, 4.0, 5.0), "fence": (4.0, 4.0, 4.0), "vegetation": (10.0, 18.0, 12.0),
    "terrain": (10.0, 8.0, 8.0), "sky": (1.0, 1.0, 3.0), "car": (2.0, 2.0, 2.0),
}
DEFAULT_TEXTURE = (3.0, 2.0, 3.0)


@cache
def _texture_lut() -> np.ndarray:
    lut = np.tile(np.asarray(DEFAULT_TEXTURE, dtype=np.float32), (256, 1))
    for name, amplitudes in TEXTURE.items():
        lut[label_id(name)] = amplitudes
    return lut


def visible_objects(objects: list[SceneObject], height: int,
                    width: int) -> list[tuple[SceneObject, list[list[int]]]]:
    """Objects with their integer, image-clipped polygons; fully hidden ones dropped."""
    out = []
    for obj in objects:
        polygon = to_pixel_polygon(obj.polygon, width, height)
        if polygon is not None:
            out.append((obj, polygon))
    return out


def annotation_json(visible: list[tuple[SceneObject, list[list[int]]]], height: int,
                    width: int) -> dict:
    """The ``*_gtFine_polygons.json`` content (Cityscapes format, painter's order)."""
    return {"imgHeight": height, "imgWidth": width,
            "objects": [{"label": obj.label, "polygon": poly} for obj, poly in visible]}


def rasterize_annotation(annotation: dict) -> tuple[np.ndarray, np.ndarray]:
    """(labelIds uint8, instanceIds int32) exactly as cityscapesscripts draws them."""
    ann = Annotation()
    ann.fromJsonText(json.dumps(annotation))
    label_ids = np.asarray(createLabelImage(ann, "ids"), dtype=np.uint8)
    instance_ids = np.asarray(createInstanceImage(ann, "ids"), dtype=np.int32)
    return label_ids, instance_ids


def paint_image(visible: list[tuple[SceneObject, list[list[int]]]], label_ids: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """RGB uint8 image: flat fills and details in painter's order, then texture and lighting."""
    height, width = label_ids.shape
    canvas = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(canvas)
    for obj, polygon in visible:
        draw.polygon([tuple(p) for p in polygon], fill=obj.color)
        for detail in obj.details:
            draw.polygon([tuple(p) for p in detail.polygon.tolist()], fill=detail.color)
    img = np.asarray(canvas, dtype=np.float32)

    amp = _texture_lut()[label_ids]  # (H, W, 3)
    noise = amp[..., 0] * rng.standard_normal((height, width), dtype=np.float32)
    for k, factor in ((1, 3), (2, 12)):
        noise += amp[..., k] * _smooth_noise(rng, height, width, factor)
    img += noise[..., None]
    img += 1.5 * rng.standard_normal(img.shape, dtype=np.float32)  # sensor noise
    gain = rng.uniform(0.8, 1.15) * rng.uniform(0.95, 1.05, size=3)  # exposure, white balance
    img = _blur(img * gain.astype(np.float32))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# Plain numpy (element-wise float arithmetic only) rather than OpenCV, whose vectorised code
# paths may differ between CPUs: the same seed should give the same bytes everywhere.
def _smooth_noise(rng: np.random.Generator, height: int, width: int,
                  factor: int) -> np.ndarray:
    """Unit Gaussian noise on a grid ``factor`` times coarser, bilinearly upsampled."""
    small = rng.standard_normal((height // factor + 2, width // factor + 2), dtype=np.float32)
    for axis, size in ((0, height), (1, width)):
        pos = np.linspace(0.0, small.shape[axis] - 1.001, size)
        i0 = pos.astype(np.int64)
        frac = (pos - i0).astype(np.float32)
        lo, hi = np.take(small, i0, axis=axis), np.take(small, i0 + 1, axis=axis)
        frac = frac[:, None] if axis == 0 else frac[None, :]
        small = lo + (hi - lo) * frac
    return small


def _blur(img: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur (about a 0.7 px Gaussian): softens polygon edges."""
    p = np.pad(img, ((1, 1), (0, 0), (0, 0)), mode="edge")
    img = (p[:-2] + 2 * p[1:-1] + p[2:]) * 0.25
    p = np.pad(img, ((0, 0), (1, 1), (0, 0)), mode="edge")
    return (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) * 0.25
