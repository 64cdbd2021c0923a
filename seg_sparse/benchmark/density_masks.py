"""Sampling masks for benchmarks: exact densities (grid prior included) or a model's own, for
the backbone's blocks and for a sampled decode head's convs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from seg_sparse.sampling import (
    SparseBottleneck,
    grid_prior_mask,
    sampled_decode_head,
    sparse_blocks,
)

Masks = dict[str, tuple[torch.Tensor, torch.Tensor]]
#: One mask per sampled conv of the decode head (None: the head does not sample).
HeadMasks = tuple[torch.Tensor, ...] | None


def exact_density_mask(
    shape: tuple[int, ...], density: float, grid_interval: int | None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A binary (B, 1, H, W) mask with ``round(density * H * W)`` ones per image.

    The grid prior's positions are always among them (they are sampled whatever the model
    predicts); the rest are drawn uniformly. Below the prior's own density the mask is the
    grid alone.
    """
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density!r}")
    b, _, h, w = shape
    grid = grid_prior_mask(h, w, grid_interval).flatten()
    n = round(density * h * w)
    masks = []
    for _ in range(b):
        mask = grid.clone()
        free = (~grid).nonzero().squeeze(1)
        extra = max(0, n - int(grid.sum()))
        pick = torch.randperm(free.numel(), generator=generator)[:extra]
        mask[free[pick]] = True
        masks.append(mask.view(1, h, w))
    return torch.stack(masks).float()


def mask_shapes(backbone: nn.Module, x: torch.Tensor) -> dict[str, tuple[tuple, tuple]]:
    """Shapes of every block's two masks for input ``x`` (one masked forward)."""
    from seg_sparse.sampling import execution_mode

    with torch.no_grad(), execution_mode(backbone, "masked"):
        backbone(x)
    return {name: (tuple(b.last_sampling.mask1.shape), tuple(b.last_sampling.mask2.shape))
            for name, b in sparse_blocks(backbone)}


def masks_at_density(backbone: nn.Module, x: torch.Tensor, density: float,
                     seed: int = 0, shapes: dict | None = None) -> Masks:
    """Exact-density masks (both masks of every sampling block) for input ``x``
    (``shapes``: the blocks' mask shapes if known, else one masked forward finds them)."""
    generator = torch.Generator().manual_seed(seed)
    masks = {}
    for name, (s1, s2) in (shapes or mask_shapes(backbone, x)).items():
        block: SparseBottleneck = backbone.get_submodule(name)
        if block.is_dense:
            continue
        masks[name] = tuple(
            exact_density_mask(s, density, block.grid_interval, generator).to(x.device)
            for s in (s1, s2))
    return masks


def recorded_masks(backbone: nn.Module, x: torch.Tensor, seed: int = 0) -> Masks:
    """The masks ``backbone`` itself samples on ``x`` (a trained checkpoint's masks)."""
    from seg_sparse.sampling import execution_mode, set_sampling_generator

    set_sampling_generator(backbone, torch.Generator(device=x.device).manual_seed(seed))
    try:
        with torch.no_grad(), execution_mode(backbone, "masked"):
            backbone(x)
    finally:
        set_sampling_generator(backbone, None)
    return {name: (b.last_sampling.mask1.clone(), b.last_sampling.mask2.clone())
            for name, b in sparse_blocks(backbone) if not b.is_dense}


def mean_densities(masks: Masks) -> dict[str, tuple[float, float]]:
    """Block name -> (d1, d2), the fraction of positions each mask computes."""
    return {name: (float((m1 > 0).float().mean()), float((m2 > 0).float().mean()))
            for name, (m1, m2) in masks.items()}


@contextmanager
def overridden_masks(backbone: nn.Module, masks: Masks) -> Iterator[None]:
    """Make every sampling block use ``masks`` instead of sampling."""
    blocks = dict(sparse_blocks(backbone))
    try:
        for name, pair in masks.items():
            blocks[name].mask_override = pair
        yield
    finally:
        for name in masks:
            blocks[name].mask_override = None


def _head_forward(model: nn.Module, x: torch.Tensor, seed: int | None) -> HeadMasks:
    """The masks a sampled decode head draws on ``x`` (one masked forward of the segmentor,
    stochastic draws from ``seed``); None without a sampled head."""
    from seg_sparse.sampling import execution_mode, set_sampling_generator

    sampled = sampled_decode_head(model)
    if sampled is None:
        return None
    if seed is not None:
        set_sampling_generator(model, torch.Generator(device=x.device).manual_seed(seed))
    metas = [dict(img_shape=tuple(x.shape[-2:]), ori_shape=tuple(x.shape[-2:]))]
    try:
        with torch.no_grad(), execution_mode(model, "masked"):
            model.encode_decode(x, metas)
    finally:
        set_sampling_generator(model, None)
    return tuple(m.clone() for m in sampled[1].last_sampling.masks)


def head_masks_at_density(model: nn.Module, x: torch.Tensor, density: float,
                          seed: int = 0, drawn: HeadMasks = None) -> HeadMasks:
    """Exact-density masks for every sampled conv of the decode head on input ``x``
    (``drawn``: masks of the right shapes if known, else one masked forward finds them)."""
    drawn = drawn if drawn is not None else _head_forward(model, x, None)
    if drawn is None:
        return None
    generator = torch.Generator().manual_seed(seed)
    interval = sampled_decode_head(model)[1].grid_interval
    return tuple(exact_density_mask(tuple(m.shape), density, interval, generator).to(x.device)
                 for m in drawn)


def recorded_head_masks(model: nn.Module, x: torch.Tensor, seed: int = 0) -> HeadMasks:
    """The masks a trained decode head itself samples on ``x``."""
    return _head_forward(model, x, seed)


def head_mask_densities(model: nn.Module, masks: HeadMasks) -> dict[str, float] | None:
    """Sampled head conv name -> fraction of positions its mask computes."""
    if masks is None:
        return None
    head, _ = sampled_decode_head(model)
    return {name: float((m > 0).float().mean())
            for name, m in zip(head.sampled_layer_names(), masks)}


@contextmanager
def overridden_head_masks(model: nn.Module, masks: HeadMasks) -> Iterator[None]:
    """Make the sampled decode head use ``masks`` instead of sampling (None: no change)."""
    sampled = sampled_decode_head(model)
    if masks is None or sampled is None:
        yield
        return
    sampling = sampled[1]
    sampling.mask_override = masks
    try:
        yield
    finally:
        sampling.mask_override = None
