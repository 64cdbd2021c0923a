"""Read the sampling masks of a model's last forward, at image resolution, for plotting.

Sparse blocks keep their last forward's masks (``SparseBottleneck.last_sampling``) at feature
resolution. Figures need them at image size: they are upscaled with nearest neighbour, so each
sampled feature position becomes one visible square; the density in a figure title is measured
on the feature-resolution mask (the figure the FLOPs count uses). Figures show the computed
positions (:meth:`MaskSampler.computed <seg_sparse.sampling.MaskSampler.computed>`): for the
``relu`` gate its support, not its weights, so picture and density agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seg_sparse.sampling import (
    HeadSampling,
    SparseBottleneck,
    build_sampler,
    computed_block_masks,
    computed_head_masks,
    sampled_decode_head,
    sparse_blocks,
)


@dataclass(frozen=True)
class BlockMasks:
    """Both masks of one block for one image: (H, W) float arrays in [0, 1] at image size,
    and their densities (fraction of sampled positions at feature resolution)."""

    mask1: np.ndarray
    mask2: np.ndarray
    density1: float
    density2: float

    def __iter__(self) -> Iterator[Any]:  # allows `m1, m2, d1, d2 = block_masks`
        return iter((self.mask1, self.mask2, self.density1, self.density2))


def _backbone(model: nn.Module) -> nn.Module:
    return getattr(model, "backbone", model)


def sampling_blocks(model: nn.Module) -> dict[str, SparseBottleneck]:
    """Blocks of the backbone that sample (the ``dense`` sampler has no masks to show)."""
    return {name: b for name, b in sparse_blocks(_backbone(model)) if not b.is_dense}


def default_blocks(model: nn.Module) -> list[str]:
    """One block per stage: the last block of each ``layerN`` (its deepest, most adapted)."""
    return last_per_stage(sampling_blocks(model))


def last_per_stage(names: Iterable[str]) -> list[str]:
    """The last of ``names`` (in model order) of each stage (``layerN``)."""
    last: dict[str, str] = {}
    for name in names:
        last[name.split(".")[0]] = name
    return list(last.values())


def resolve_blocks(model: nn.Module, blocks: Sequence[str] | str | None) -> list[str]:
    """``None`` -> :func:`default_blocks`, ``'all'`` -> every sampling block, else the names
    given (checked, with the valid names in the error)."""
    available = sampling_blocks(model)
    if not available:
        raise ValueError("the model has no sampling blocks (dense sampler?): no masks to show")
    if blocks is None:
        return default_blocks(model)
    if isinstance(blocks, str):
        if blocks != "all":
            raise ValueError(f"blocks must be a list of block names or 'all', got {blocks!r}")
        return list(available)
    unknown = [b for b in blocks if b.removeprefix("backbone.") not in available]
    if unknown:
        raise ValueError(f"unknown sampling block(s) {unknown}; available: {list(available)}")
    return [b.removeprefix("backbone.") for b in blocks]


def _to_image(mask: torch.Tensor, size: tuple[int, int],
              region: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """One image's (h, w) mask, cut to ``region`` and stretched to ``size`` (nearest)."""
    m = mask.detach().float()[None, None]
    h, w = m.shape[-2:]
    m = m[..., : max(1, round(h * region[0])), : max(1, round(w * region[1]))]
    return F.interpolate(m, size=size, mode="nearest")[0, 0].clamp(0, 1).cpu().numpy()


def _density(mask: torch.Tensor) -> float:
    return float(mask.detach().float().mean())


def _block_masks(mask1: torch.Tensor, mask2: torch.Tensor, size: tuple[int, int],
                 region: tuple[float, float]) -> BlockMasks:
    """From one image's computed positions (h, w) at feature resolution."""
    return BlockMasks(_to_image(mask1, size, region), _to_image(mask2, size, region),
                      _density(mask1), _density(mask2))


def _check_index(index: int, batch: int) -> None:
    if not 0 <= index < batch:
        raise IndexError(f"image index {index} out of range for batch {batch}")


def collect_block_masks(
    model: nn.Module,
    image_size: tuple[int, int],
    blocks: Sequence[str] | str | None = None,
    index: int = 0,
    region: tuple[float, float] = (1.0, 1.0),
) -> dict[str, BlockMasks]:
    """Masks of the model's last forward for image ``index`` of the batch, resized to
    ``image_size`` (H, W) with nearest neighbour. Call right after the forward (e.g.
    ``model.test_step``); ``blocks`` as in :func:`resolve_blocks`.

    The masks cover the network input; when the input was a resized image, pass the size the
    picture is drawn at: masks are stretched to it like the prediction. ``region``: the
    fraction (of height, of width) of the input that holds the image, when the input was
    padded at the bottom / right (detection batches); only that part is shown.
    """
    available = sampling_blocks(model)
    masks = computed_block_masks((name, available[name]) for name in resolve_blocks(model, blocks))
    result = {}
    for name, (mask1, mask2) in masks.items():
        _check_index(index, mask1.shape[0])
        result[name] = _block_masks(mask1[index, 0], mask2[index, 0], image_size, region)
    return result


@dataclass(frozen=True)
class HeadMask:
    """The mask of one sampled decode-head conv for one image: (H, W) in [0, 1] at image size,
    and its density at feature resolution."""

    mask: np.ndarray
    density: float


def collect_head_masks(
    model: nn.Module,
    image_size: tuple[int, int],
    index: int = 0,
) -> dict[str, HeadMask]:
    """Masks of the sampled decode head's last forward for image ``index`` (conv name, e.g.
    ``conv_cat`` -> :class:`HeadMask`), resized like :func:`collect_block_masks`; empty when
    the head does not sample."""
    sampled = sampled_decode_head(model)
    if sampled is None:
        return {}
    head, sampling = sampled
    result = {}
    for name, mask in computed_head_masks(sampling, head.sampled_layer_names()).items():
        _check_index(index, mask.shape[0])
        result[name] = HeadMask(_to_image(mask[index, 0], image_size), _density(mask[index]))
    return result


def image_geometry(sample: Any) -> tuple[tuple[int, int], tuple[float, float]]:
    """(size to draw masks at, region of the network input that holds the image) of a
    prediction. Segmentation: the size of ``pred_sem_seg``, the whole input. Detection (a
    DetDataSample): ``ori_shape``, the resized image inside the padded batch input
    (``img_shape`` of ``batch_input_shape``)."""
    if "pred_sem_seg" in sample:
        h, w = sample.pred_sem_seg.data.shape[-2:]
        return (int(h), int(w)), (1.0, 1.0)
    (h, w), (ih, iw), (ph, pw) = sample.ori_shape, sample.img_shape, sample.batch_input_shape
    return (int(h), int(w)), (ih / ph, iw / pw)


def prediction_masks(
    sample: Any, blocks: Sequence[str] | str | None = None,
) -> tuple[dict[str, BlockMasks], dict[str, HeadMask]]:
    """The masks a prediction carries (``model.test_cfg.return_sampling_masks``; docs/
    inference.md) at the image's size (:func:`image_geometry`): (block -> :class:`BlockMasks`,
    head conv -> :class:`HeadMask`). ``blocks``: None (the last block of each stage),
    ``'all'`` or block names."""
    from seg_sparse.models.sparse_model import (
        DENSITIES_KEY,
        HEAD_DENSITIES_KEY,
        HEAD_MASKS_FIELD,
        MASKS_FIELD,
    )

    if MASKS_FIELD not in sample:
        raise ValueError("the prediction carries no sampling masks: predict with "
                         "model.test_cfg.return_sampling_masks=True (or "
                         "seg_sparse.apis.inference_with_masks)")
    size, region = image_geometry(sample)
    carried = sample.get(MASKS_FIELD)
    names = in_model_order({key.rpartition(".")[0] for key in carried.keys()},
                           sample.metainfo.get(DENSITIES_KEY, {}))
    if blocks is None:
        blocks = last_per_stage(names)
    elif isinstance(blocks, str):
        if blocks != "all":
            raise ValueError(f"blocks must be a list of block names or 'all', got {blocks!r}")
        blocks = names
    unknown = [b for b in blocks if b not in names]
    if unknown:
        raise ValueError(f"unknown sampling block(s) {unknown}; available: {names}")
    masks = {name: _block_masks(carried.get(f"{name}.mask1"), carried.get(f"{name}.mask2"),
                                size, region)
             for name in blocks}
    head = sample.get(HEAD_MASKS_FIELD)
    head_masks = {} if head is None else {
        name: HeadMask(_to_image(head.get(name), size, region), _density(head.get(name)))
        for name in in_model_order(head.keys(), sample.metainfo.get(HEAD_DENSITIES_KEY, {}))}
    return masks, head_masks


def in_model_order(names: Iterable[str], reference: Iterable[str]) -> list[str]:
    """``names`` in the order of ``reference`` (e.g. the prediction's densities, which follow
    the model), the rest after them sorted. Data samples keep their fields unordered."""
    names = set(names)
    ordered = [n for n in reference if n in names]
    return ordered + sorted(names - set(ordered))


@contextmanager
def use_sampler(model: nn.Module, sampler: str) -> Iterator[None]:
    """Temporarily switch every sampling block and sampled head to ``sampler`` (e.g.
    ``'deterministic'`` to compare with the stochastic masks of the same trained model);
    restored on exit."""
    blocks: dict[str, SparseBottleneck | HeadSampling] = dict(sampling_blocks(model))
    head = sampled_decode_head(model)
    if head is not None:
        blocks["decode_head"] = head[1]
    saved = {name: block.sampler for name, block in blocks.items()}
    try:
        for block in blocks.values():
            block.sampler = build_sampler(sampler)
        yield
    finally:
        for name, block in blocks.items():
            block.sampler = saved[name]


def predict_with_masks(
    model: nn.Module, data: dict, blocks: Sequence[str] | str | None = None
) -> tuple[Any, dict[str, BlockMasks]]:
    """Run ``model.test_step(data)`` on a one-image batch (as built by the test pipeline and
    ``pseudo_collate``) with the sampling masks in the prediction, and return (data sample,
    masks of ``blocks`` (as in :func:`resolve_blocks`) at the image's original size,
    :func:`image_geometry`)."""
    names = resolve_blocks(model, blocks)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), model.returning_sampling_masks():
            (sample,) = model.test_step(data)
    finally:
        model.train(was_training)
    return sample, prediction_masks(sample, names)[0]
