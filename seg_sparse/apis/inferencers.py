"""mmseg's and mmdet's Inferencers that also return where a sparse model computed.

:class:`SparseSegInferencer` (``MMSegInferencer``) and :class:`SparseDetInferencer`
(``DetInferencer``) take the same arguments and return the same results as their parents, plus
per image (docs/inference.md):

* ``sampling_densities`` (block -> [d1, d2]) and ``head_sampling_densities`` (sampled
  decode-head conv -> density), always;
* ``sampling_masks`` / ``head_sampling_masks`` (mask name -> bool array at feature resolution,
  as in the data sample) with ``return_masks=True`` (or ``model.test_cfg.return_sampling_masks``
  in the config);
* with ``draw_masks=True`` (one block per stage) or a list of block names, and ``out_dir``: a
  ``<image>_masks.png`` figure per image next to the visualizations (the image, the prediction,
  and the chosen blocks' and sampled head convs' masks over the image; needs the masks).

The segmentation results sit next to mmseg's ``predictions`` (one entry per image, unwrapped for
one image, as mmseg does); the detection ones inside each image's prediction dict (the
``preds/*.json`` files mmdet writes keep mmdet's fields only).
"""

from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence
from typing import Any

import numpy as np
from mmdet.apis import DetInferencer
from mmseg.apis import MMSegInferencer

from seg_sparse.models.sparse_model import (
    DENSITIES_KEY,
    HEAD_DENSITIES_KEY,
    HEAD_MASKS_FIELD,
    MASKS_FIELD,
)
from seg_sparse.visualization.mask_collection import in_model_order

#: What each prediction adds to the Inferencer's results, in this order.
OUTPUT_KEYS = (DENSITIES_KEY, HEAD_DENSITIES_KEY, MASKS_FIELD, HEAD_MASKS_FIELD)


def sampling_outputs(sample: Any) -> dict[str, Any]:
    """Densities (JSON-safe lists / floats) and, when the prediction carries them, the masks
    (name -> bool numpy array) of one data sample."""
    out: dict[str, Any] = {}
    densities = sample.metainfo.get(DENSITIES_KEY)
    if densities is not None:
        out[DENSITIES_KEY] = {k: [float(d) for d in v] for k, v in densities.items()}
    head = sample.metainfo.get(HEAD_DENSITIES_KEY)
    if head is not None:
        out[HEAD_DENSITIES_KEY] = {k: float(v) for k, v in head.items()}
    for field, order in ((MASKS_FIELD, _mask_names(densities or {})),
                         (HEAD_MASKS_FIELD, head or {})):
        if field in sample:
            masks = sample.get(field)
            out[field] = {k: masks.get(k).cpu().numpy()
                          for k in in_model_order(masks.keys(), order)}
    return out


def _mask_names(densities: dict) -> list[str]:
    return [f"{block}.mask{k}" for block in densities for k in (1, 2)]


class _SamplingInferencerMixin:
    """``return_masks`` (forward) and ``draw_masks`` (visualize) for both Inferencers."""

    model: Any
    num_visualized_imgs: int

    def forward(self, inputs: Any, return_masks: bool = False, **kwargs: Any) -> Any:
        if not return_masks:
            return super().forward(inputs, **kwargs)  # type: ignore[misc]
        if not hasattr(self.model, "returning_sampling_masks"):
            raise TypeError(f"return_masks: {type(self.model).__name__} is not a seg_sparse "
                            "sparse model")
        with self.model.returning_sampling_masks():
            return super().forward(inputs, **kwargs)  # type: ignore[misc]

    def _figure_dir(self, visualize_kwargs: dict) -> str:
        raise NotImplementedError

    def visualize(self, inputs: list, preds: list, draw_masks: bool | Sequence[str] = False,
                  **kwargs: Any) -> Any:
        first = self.num_visualized_imgs
        visualization = super().visualize(inputs, preds, **kwargs)  # type: ignore[misc]
        if draw_masks:
            out_dir = self._figure_dir(kwargs)
            if not out_dir:
                raise ValueError("draw_masks writes <image>_masks.png figures: give out_dir")
            self.mask_figures(inputs, preds, out_dir, draw_masks, first)
        return visualization

    def mask_figures(self, inputs: list, preds: list, out_dir: str,
                     blocks: bool | Sequence[str], first_index: int = 0) -> list[str]:
        """Write one mask figure per prediction into ``out_dir``; returns the paths.
        ``blocks``: True (the last block of each stage) or block names."""
        import mmcv

        from seg_sparse.visualization import mask_overlay_figure, prediction_panel
        from seg_sparse.visualization.mask_collection import prediction_masks

        names = None if blocks is True else list(blocks)  # None: the last block of each stage
        os.makedirs(out_dir, exist_ok=True)
        written = []
        for i, (single_input, sample) in enumerate(zip(inputs, preds)):
            if isinstance(single_input, str):
                image = mmcv.imread(single_input, channel_order="rgb")
                stem = osp.splitext(osp.basename(single_input))[0]
            else:
                image = np.ascontiguousarray(single_input[..., ::-1])  # BGR, as mmcv reads
                stem = f"{first_index + i:08d}"
            masks, head_masks = prediction_masks(sample, names)
            prediction, legend = prediction_panel(image, sample, self.cfg,
                                                  self.model.dataset_meta)
            path = osp.join(out_dir, f"{stem}_masks.png")
            mask_overlay_figure(image, prediction, masks, out_path=path, head_masks=head_masks,
                                title=f"{stem}: computed positions", **legend)
            written.append(path)
        return written


class SparseSegInferencer(_SamplingInferencerMixin, MMSegInferencer):
    """``MMSegInferencer`` plus sampling densities, masks and mask figures (module doc)."""

    forward_kwargs = MMSegInferencer.forward_kwargs | {"return_masks"}
    visualize_kwargs = MMSegInferencer.visualize_kwargs | {"draw_masks"}

    def _figure_dir(self, visualize_kwargs: dict) -> str:
        return visualize_kwargs.get("img_out_dir", "")

    def postprocess(self, preds: list, visualization: Any, return_datasample: bool = False,
                    pred_out_dir: str = "") -> Any:
        results = super().postprocess(preds, visualization, return_datasample, pred_out_dir)
        if return_datasample:
            return results
        extras = [sampling_outputs(sample) for sample in preds]
        for key in OUTPUT_KEYS:
            values = [e[key] for e in extras if key in e]
            if values:
                results[key] = values[0] if len(preds) == 1 else values
        return results


class SparseDetInferencer(_SamplingInferencerMixin, DetInferencer):
    """``DetInferencer`` plus sampling densities, masks and mask figures (module doc)."""

    forward_kwargs = DetInferencer.forward_kwargs | {"return_masks"}
    visualize_kwargs = DetInferencer.visualize_kwargs | {"draw_masks"}

    def _figure_dir(self, visualize_kwargs: dict) -> str:
        out_dir = visualize_kwargs.get("img_out_dir", "")  # mmdet draws into <out_dir>/vis
        if not out_dir or visualize_kwargs.get("no_save_vis"):
            return ""
        return osp.join(out_dir, "vis")

    def pred2dict(self, data_sample: Any, pred_out_dir: str = "") -> dict:
        result = super().pred2dict(data_sample, pred_out_dir)
        result.update(sampling_outputs(data_sample))
        return result
