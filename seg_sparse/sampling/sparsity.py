"""What a model's sampling costs and where it computed: the sparsity loss, the densities and
the computed positions of the last forward."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .bottleneck import SamplingOutput, SparseBottleneck
from .head import HeadSampling
from .samplers import MaskSampler

#: Loss weights of the two masks of a block (conv1 mask, conv2 mask), as in the paper.
MASK_LOSS_WEIGHTS = (0.25, 0.75)

NamedBlocks = Iterable[tuple[str, SparseBottleneck]]


def _named(blocks: NamedBlocks | Iterable[SparseBottleneck]) -> list[tuple[str, SparseBottleneck]]:
    named = []
    for i, item in enumerate(blocks):
        if isinstance(item, SparseBottleneck):
            named.append((str(i), item))
        else:
            named.append(item)
    return named


def _last(name: str, block: SparseBottleneck) -> SamplingOutput:
    if block.last_sampling is None:
        raise RuntimeError(f"sparse block {name!r} has not run a forward pass yet")
    return block.last_sampling


def sparsity_loss(
    blocks: NamedBlocks | Iterable[SparseBottleneck], weight: float,
    heads: Iterable[HeadSampling] = (),
) -> torch.Tensor:
    """weight * (mean over blocks of (0.25 * mean(p1) + 0.75 * mean(p2))
    + sum over heads of loss_weight * sparsity_term), from the last forward.

    ``blocks``: (name, block) pairs as :func:`sparse_blocks` yields, or plain blocks. Blocks
    with the ``dense`` sampler have nothing to learn and are left out, as are dense heads; with
    nothing that samples the loss is a zero scalar. A head's term
    (:meth:`HeadSampling.sparsity_term`) weights its convs by their cost shares, as the 0.25 /
    0.75 do a block's convs, and enters next to the blocks' mean (docs/sparse_head.md).
    """
    w1, w2 = MASK_LOSS_WEIGHTS
    terms = []
    device = None
    for name, block in _named(blocks):
        device = block.conv1.weight.device
        if block.is_dense:
            continue
        out = _last(name, block)
        terms.append(w1 * out.prob1.mean() + w2 * out.prob2.mean())
    loss = torch.stack(terms).mean() if terms else None
    for head in heads:
        if head.is_dense:
            continue
        term = head.loss_weight * head.sparsity_term()
        loss = term if loss is None else loss + term
    if loss is None:
        return torch.zeros((), device=device)
    return weight * loss


def mask_density(sampler: MaskSampler, mask: torch.Tensor) -> torch.Tensor:
    """Per-image density (B,) of a (B, 1, H, W) mask drawn by ``sampler``: the mean of
    :meth:`MaskSampler.computed <seg_sparse.sampling.MaskSampler.computed>` over positions."""
    return sampler.computed(mask).detach().flatten(1).float().mean(1)


@torch.no_grad()
def block_densities(
    blocks: NamedBlocks | Iterable[SparseBottleneck],
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """name -> (d1, d2): per-image fraction of computed positions of each mask, shape (B,).

    Read from the last forward's masks through the block's sampler
    (:meth:`~seg_sparse.sampling.MaskSampler.computed`): the fraction of non-zero positions of
    a test mask (the support g > 0 of the soft ``relu`` gate), the mean of a soft Gumbel
    training mask (the expected density). Dense blocks report ones.
    """
    densities = {}
    for name, block in _named(blocks):
        out = _last(name, block)
        densities[name] = (mask_density(block.sampler, out.mask1),
                           mask_density(block.sampler, out.mask2))
    return densities


@torch.no_grad()
def computed_block_masks(
    blocks: NamedBlocks | Iterable[SparseBottleneck],
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """name -> (mask1, mask2) of the last forward as computed positions
    (:meth:`MaskSampler.computed <seg_sparse.sampling.MaskSampler.computed>`), (B, 1, h, w) at
    each mask's feature resolution: what :func:`block_densities` averages."""
    masks = {}
    for name, block in _named(blocks):
        out = _last(name, block)
        masks[name] = (block.sampler.computed(out.mask1).detach(),
                       block.sampler.computed(out.mask2).detach())
    return masks


@torch.no_grad()
def computed_head_masks(head: HeadSampling, names: Iterable[str]) -> dict[str, torch.Tensor]:
    """conv name -> the computed positions (B, 1, h, w) of a sampled head's last forward, one
    per sampled conv (``names`` in forward order, as the head module names them)."""
    if head.last_sampling is None:
        raise RuntimeError("the sampled head has not run a forward pass yet")
    return {name: head.sampler.computed(mask).detach()
            for name, mask in zip(names, head.last_sampling.masks, strict=True)}
