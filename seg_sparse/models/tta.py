"""Test-time augmentation wrappers that keep the sampling bookkeeping of every augmentation.

mmseg's ``SegTTAModel`` and mmdet's ``DetTTAModel`` merge the predictions of an image's
augmentations (scales, flips) into one data sample that keeps the metainfo of one augmentation
only, so the densities and the input shape the sparse metrics turn into GFLOPs would be those
of a single forward pass. :class:`SparseSegTTAModel` / :class:`SparseDetTTAModel` (what
``seg-sparse test --tta`` uses) also put into the merged sample:

* ``sampling_densities`` / ``head_sampling_densities``: per layer, the fraction of positions
  computed over all of the image's forward passes (weighted by input area, as slide crops are);
* ``sampling_input_shapes``: the (H, W) input of every forward pass, which the sparse metrics
  count one by one (docs/inference.md, "Test-time augmentation").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmdet.models.test_time_augs import DetTTAModel
from mmdet.registry import MODELS as MMDET_MODELS
from mmseg.models import SegTTAModel
from mmseg.registry import MODELS as MMSEG_MODELS

from .sparse_model import DENSITIES_KEY, HEAD_DENSITIES_KEY, INPUT_SHAPE_KEY, INPUT_SHAPES_KEY


def _area_weighted(values: Sequence[dict[str, Any]], areas: Sequence[int]) -> dict[str, Any]:
    """Per name, the area-weighted mean of a number or of a tuple of numbers."""
    total = sum(areas)
    out: dict[str, Any] = {}
    for name in values[0]:
        entries = [v[name] for v in values]
        if isinstance(entries[0], (tuple, list)):
            out[name] = tuple(sum(e[i] * a for e, a in zip(entries, areas)) / total
                              for i in range(len(entries[0])))
        else:
            out[name] = sum(e * a for e, a in zip(entries, areas)) / total
    return out


def merged_sampling_info(augmented: Sequence[Any]) -> dict[str, Any]:
    """The sampling metainfo of one image's augmented predictions, merged (module doc)."""
    shapes = [tuple(s.metainfo[INPUT_SHAPE_KEY]) for s in augmented
              if INPUT_SHAPE_KEY in s.metainfo]
    if len(shapes) != len(augmented):  # not a sparse model's predictions
        return {}
    areas = [h * w for h, w in shapes]
    info: dict[str, Any] = {INPUT_SHAPES_KEY: shapes}
    for key in (DENSITIES_KEY, HEAD_DENSITIES_KEY):
        values = [s.metainfo.get(key) for s in augmented]
        if all(v is not None for v in values):
            info[key] = _area_weighted(values, areas)
    return info


class _SamplingTTAMixin:
    """Runs the wrapped TTA merge, then attaches :func:`merged_sampling_info`."""

    def merge_preds(self, data_samples_list: list[list[Any]]) -> list[Any]:
        merged = super().merge_preds(data_samples_list)  # type: ignore[misc]
        for sample, augmented in zip(merged, data_samples_list):
            info = merged_sampling_info(augmented)
            if info:
                sample.set_metainfo(info)
        return merged


@MMSEG_MODELS.register_module()
class SparseSegTTAModel(_SamplingTTAMixin, SegTTAModel):
    """mmseg's ``SegTTAModel`` (same arguments) with the densities of every augmentation."""


@MMDET_MODELS.register_module()
class SparseDetTTAModel(_SamplingTTAMixin, DetTTAModel):
    """mmdet's ``DetTTAModel`` (same arguments) with the densities of every augmentation."""
