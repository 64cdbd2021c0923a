"""Sampled positions in buffers of fixed capacity, built on the device without a host sync.

A mask of N positions (flat over (B, H, W)) gives at most N sampled positions, so every buffer
indexed by them has capacity N and the number actually sampled stays a one-element tensor on
the device. Kernels are launched over the capacity; programs whose rows start at or past the
count return at once. Nothing here reads a value back to the host (``nonzero`` would), so a
block or a whole backbone can be captured in a CUDA graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Positions:
    """Where a mask sampled, compacted in flat-position order.

    ``index``: (N,) int32, the sampled positions first (``index[:count]``), then zeros;
    ``column``: (N,) int32, the row of every position in a buffer compacted by ``index``, -1
    where the mask did not sample; ``count``: (1,) int32 on the device.
    """

    index: torch.Tensor
    column: torch.Tensor
    count: torch.Tensor

    @property
    def capacity(self) -> int:
        return self.index.shape[0]


def compact_positions(mask: torch.Tensor) -> Positions:
    """The positions where ``mask`` (any shape, flattened) is above 0, by an inclusive cumsum:
    position p with rank r (1-based) goes to slot r - 1; the others are scattered into one
    spare slot past the capacity, which is then dropped."""
    flat = mask.reshape(-1)
    n = flat.numel()
    sampled = flat > 0
    rank = torch.cumsum(sampled, 0, dtype=torch.int32)
    column = torch.where(sampled, rank - 1, -1)
    slot = torch.where(sampled, rank - 1, n).long()
    index = torch.zeros(n + 1, dtype=torch.int32, device=flat.device)
    index.scatter_(0, slot, torch.arange(n, dtype=torch.int32, device=flat.device))
    count = rank[-1:] if n else torch.zeros(1, dtype=torch.int32, device=flat.device)
    return Positions(index[:n], column, count)
