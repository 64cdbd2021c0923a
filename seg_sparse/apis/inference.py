"""One call from an image to its prediction, sampling masks and densities (docs/inference.md).

:func:`inference_with_masks` is mmseg's ``inference_model`` (mmdet's ``inference_detector`` for
a detection model) run with ``return_sampling_masks`` switched on, its masks brought to the
image's size: what a notebook needs to plot where the model computed.
:func:`inference_pipeline` / :func:`load_image` run a config's test pipeline on an image file
(``seg-sparse visualize``, ``bench --image``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mmengine.config import Config
from torch import nn


@dataclass(frozen=True)
class MaskedPrediction:
    """One image's prediction with where the model computed.

    ``prediction``: the ``SegDataSample`` / ``DetDataSample`` as mmseg / mmdet return it, plus
    the ``sampling_masks`` / ``head_sampling_masks`` fields (feature resolution, bool).
    ``masks``: backbone block -> :class:`~seg_sparse.visualization.BlockMasks` (mask1 / mask2 at
    the image's size, 1 where computed, and their densities); ``head_masks``: sampled decode-head
    conv -> :class:`~seg_sparse.visualization.HeadMask`. ``densities``: block -> (d1, d2) and
    ``head_densities``: conv -> density, the fractions of computed positions (the figures the
    GFLOPs use).
    """

    prediction: Any
    masks: dict[str, Any]
    head_masks: dict[str, Any]
    densities: dict[str, tuple[float, float]]
    head_densities: dict[str, float]


def _inference_function(model: nn.Module) -> Any:
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        raise TypeError("inference_with_masks needs a model from mmseg's init_model or mmdet's "
                        "init_detector (it reads the test pipeline from model.cfg)")
    from seg_sparse.apis.task import is_detection

    if is_detection(cfg):
        from mmdet.apis import inference_detector

        return inference_detector
    from mmseg.apis import inference_model

    return inference_model


def _masked(sample: Any, blocks: Sequence[str] | str | None) -> MaskedPrediction:
    from seg_sparse.models.sparse_model import DENSITIES_KEY, HEAD_DENSITIES_KEY
    from seg_sparse.visualization.mask_collection import prediction_masks

    masks, head_masks = prediction_masks(sample, blocks)
    densities = sample.metainfo.get(DENSITIES_KEY, {})
    head_densities = sample.metainfo.get(HEAD_DENSITIES_KEY, {})
    return MaskedPrediction(
        prediction=sample, masks=masks, head_masks=head_masks,
        densities={k: (float(v[0]), float(v[1])) for k, v in densities.items()},
        head_densities={k: float(v) for k, v in head_densities.items()},
    )


def inference_with_masks(
    model: nn.Module,
    img: str | np.ndarray | Sequence[str | np.ndarray],
    blocks: Sequence[str] | str | None = None,
) -> MaskedPrediction | list[MaskedPrediction]:
    """Predict ``img`` (a file, a BGR array as ``mmcv.imread`` returns it, or a list of
    either) with a sparse model from mmseg's ``init_model`` / mmdet's ``init_detector`` and
    return its :class:`MaskedPrediction` (a list for a list). ``blocks``: the backbone blocks
    whose masks to bring to image size: None (the last block of each stage), ``'all'``, or
    names (``layer3.5``). The data sample carries every block's masks at feature resolution
    either way.

    The model's ``test_cfg.return_sampling_masks`` is switched on for this call only. Raises
    ``TypeError`` for a model without sampling layers' bookkeeping (not a seg_sparse model).
    """
    if not hasattr(model, "returning_sampling_masks"):
        raise TypeError(f"{type(model).__name__} is not a seg_sparse sparse model (use a config "
                        "whose model is SparseEncoderDecoder or SparseFasterRCNN)")
    infer = _inference_function(model)
    cfg = model.cfg
    # mmseg's inference_model rewrites model.cfg's test pipeline in place for array input, after
    # which a file fails (KeyError 'img'); it runs on a copy here
    model.cfg = copy.deepcopy(cfg)
    try:
        with model.returning_sampling_masks():
            result = infer(model, img)
    finally:
        model.cfg = cfg
    if isinstance(result, list):
        return [_masked(sample, blocks) for sample in result]
    return _masked(result, blocks)


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
