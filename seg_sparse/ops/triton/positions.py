"""Sampled positions in buffers of fixed capacity, built on the device without a host sync.

A mask of N positions (flat over (B, H, W)) gives at most N sampled positions, so every buffer
indexed by them has capacity N and the number actually sampled stays a one-element tensor on
the device. Kernels are launched over the capacity; programs whose rows start at or past the
count return at once. Nothing here reads a value back to the host (``nonzero`` would), so a
block or a whole backbone can be captured in a CUDA graph. Three launches per mask: the
comparison, torch's inclusive ``cumsum`` (the ranks), one kernel writing the index and the
column map from the ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

#: Positions per program of the scatter kernel.
BLOCK = 1024


@dataclass
class Positions:
    """Where a mask sampled, compacted in flat-position order.

    ``index``: (N,) int32, the sampled positions first (``index[:count]``; the slots past the
    count are never written and never read); ``column``: (N,) int32, the row of every position
    in a buffer compacted by ``index``, -1 where the mask did not sample; ``count``: (1,) int32
    on the device.
    """

    index: torch.Tensor
    column: torch.Tensor
    count: torch.Tensor

    @property
    def capacity(self) -> int:
        return self.index.shape[0]


@triton.jit
def _scatter_positions_kernel(rank_ptr, sampled_ptr, index_ptr, column_ptr, n,
                              BLOCK: tl.constexpr):
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = p < n
    sampled = tl.load(sampled_ptr + p, mask=ok, other=0) != 0
    slot = tl.load(rank_ptr + p, mask=ok, other=0) - 1  # inclusive rank -> slot
    tl.store(column_ptr + p, tl.where(sampled, slot, -1), mask=ok)
    tl.store(index_ptr + slot, p, mask=ok & sampled)


def compact_positions(mask: torch.Tensor) -> Positions:
    """The positions where ``mask`` (any shape, flattened) is above 0: position p with
    inclusive rank r (the number of sampled positions up to p) goes to slot r - 1."""
    flat = mask.reshape(-1)
    n = flat.numel()
    sampled = flat > 0
    rank = torch.cumsum(sampled, 0, dtype=torch.int32)
    index = torch.empty(n, dtype=torch.int32, device=flat.device)
    column = torch.empty(n, dtype=torch.int32, device=flat.device)
    if n == 0:
        return Positions(index, column, torch.zeros(1, dtype=torch.int32, device=flat.device))
    _scatter_positions_kernel[(triton.cdiv(n, BLOCK),)](rank, sampled, index, column, n,
                                                        BLOCK=BLOCK)
    return Positions(index, column, rank[-1:])
