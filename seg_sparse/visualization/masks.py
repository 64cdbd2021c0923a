"""Read the sampling masks of a model's last forward, at image resolution, for plotting.

Sparse blocks keep their last forward's masks (``SparseBottleneck.last_sampling``) at feature
resolution. Figures need them at image size: they are upscaled with nearest neighbour, so each
sampled feature position becomes one visible square; the density in a figure title is measured
on the feature-resolution mask (the figure the FLOPs count uses). Figures show the computed
positions (:meth:`MaskSampler.computed <seg_sparse.sampling.MaskSampler.computed>`): for the
``relu`` gate its support, not its weights, so picture and density agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seg_sparse.models.sparse_model import INPUT_SHAPE_KEY
from seg_sparse.sampling import (
    HeadSampling,
    SparseBottleneck,
    build_sampler,
    mask_density,
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
    last: dict[str, str] = {}
    for name in sampling_blocks(model):
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


def _to_image(mask: torch.Tensor, index: int, size: tuple[int, int],
              region: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    m = mask[index : index + 1].detach().float()
    h, w = m.shape[-2:]
    m = m[..., : max(1, round(h * region[0])), : max(1, round(w * region[1]))]
    return F.interpolate(m, size=size, mode="nearest")[0, 0].clamp(0, 1).cpu().numpy()


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
    result = {}
    for name in resolve_blocks(model, blocks):
        sampler, out = available[name].sampler, available[name].last_sampling
        if out is None:
            raise RuntimeError(f"block {name!r} has not run a forward pass yet")
        if not 0 <= index < out.mask1.shape[0]:
            raise IndexError(f"image index {index} out of range for batch {out.mask1.shape[0]}")
        result[name] = BlockMasks(
            mask1=_to_image(sampler.computed(out.mask1), index, image_size, region),
            mask2=_to_image(sampler.computed(out.mask2), index, image_size, region),
            density1=float(mask_density(sampler, out.mask1)[index]),
            density2=float(mask_density(sampler, out.mask2)[index]),
        )
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
    if sampling.last_sampling is None:
        raise RuntimeError("the sampled decode head has not run a forward pass yet")
    masks = sampling.last_sampling.masks
    if not 0 <= index < masks[0].shape[0]:
        raise IndexError(f"image index {index} out of range for batch {masks[0].shape[0]}")
    return {
        name: HeadMask(_to_image(sampling.sampler.computed(mask), index, image_size),
                       float(mask_density(sampling.sampler, mask)[index]))
        for name, mask in zip(head.sampled_layer_names(), masks)
    }


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


def input_region(sample: Any) -> tuple[float, float]:
    """Fraction (of height, of width) of the network input that holds the image of ``sample``
    (a Seg/DetDataSample): ``img_shape`` within the padded ``batch_input_shape`` (or the input
    shape a sparse model records), (1, 1) when the input was not padded."""
    meta = sample.metainfo
    padded = meta.get("batch_input_shape") or meta.get(INPUT_SHAPE_KEY)
    shape = meta.get("img_shape")
    if padded is None or shape is None:
        return 1.0, 1.0
    return min(1.0, shape[0] / padded[0]), min(1.0, shape[1] / padded[1])


def picture_size(sample: Any) -> tuple[int, int]:
    """(H, W) a prediction of ``sample`` is drawn at: its ``pred_sem_seg`` (segmentation), else
    its original image size (detection)."""
    if "pred_sem_seg" in sample:
        h, w = sample.pred_sem_seg.data.shape[-2:]
    else:
        h, w = sample.ori_shape
    return int(h), int(w)


def sample_masks(model: nn.Module, sample: Any, index: int = 0,
                 blocks: Sequence[str] | str | None = None) -> dict[str, BlockMasks]:
    """Masks of the model's last forward for image ``index`` of its batch, whose prediction is
    ``sample``: cut to the part of the input that holds the image and stretched to
    :func:`picture_size`, so they lie over the image as the prediction does."""
    return collect_block_masks(model, picture_size(sample), blocks, index,
                               region=input_region(sample))


def predict_with_masks(
    model: nn.Module, data: dict, blocks: Sequence[str] | str | None = None
) -> tuple[Any, dict[str, BlockMasks]]:
    """Run ``model.test_step(data)`` on a one-image batch (as built by the test pipeline and
    ``pseudo_collate``) and return (data sample, masks at the image's original size,
    :func:`sample_masks`)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            (sample,) = model.test_step(data)
    finally:
        model.train(was_training)
    return sample, sample_masks(model, sample, 0, blocks)
