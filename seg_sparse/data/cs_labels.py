"""Lookup tables built from the official Cityscapes label definitions.

Everything here derives from ``cityscapesscripts.helpers.labels`` so the toolkit never carries
a second copy of the ids, trainIds or colours.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from cityscapesscripts.helpers.labels import labels, name2label

IGNORE_INDEX = 255


@cache
def train_id_lut() -> np.ndarray:
    """uint8[256]: labelId -> trainId (255 for ignored and unknown ids)."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label in labels:
        if label.id >= 0:
            lut[label.id] = label.trainId if 0 <= label.trainId < IGNORE_INDEX else IGNORE_INDEX
    lut.setflags(write=False)
    return lut


@cache
def color_lut() -> np.ndarray:
    """uint8[256, 3]: labelId -> the official colour (as in ``*_gtFine_color.png``)."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    for label in labels:
        if label.id >= 0:
            lut[label.id] = label.color
    lut.setflags(write=False)
    return lut


def label_id(name: str) -> int:
    """labelId of a Cityscapes class name, with a clear error for unknown names."""
    if name not in name2label:
        raise KeyError(f"unknown Cityscapes label {name!r}")
    return name2label[name].id


def instance_label_ids() -> frozenset[int]:
    """labelIds whose objects are annotated as instances (car, person, bicycle, ...)."""
    return frozenset(label.id for label in labels if label.hasInstances and label.id >= 0)
