"""Grid prior: a regular lattice of positions that are always sampled.

It guarantees a minimum density of 1/k^2 in every region (so no region is left without any
sample) and, per the paper's appendix, lowers the run-to-run variance of stochastic inference.
"""

from __future__ import annotations

import torch


def check_grid_interval(interval: int | None, offset: int = 0) -> int:
    """Validated interval as an int (0: prior off); ValueError naming the bad value."""
    k = 0 if interval is None else interval
    if int(k) != k or k < 0:
        raise ValueError(f"grid interval must be None or an integer >= 0, got {interval!r}")
    if k and not 0 <= offset < k:
        raise ValueError(f"grid offset must be in [0, {k}), got {offset!r}")
    return int(k)


def grid_prior_mask(
    h: int,
    w: int,
    interval: int | None = 11,
    offset: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Boolean (h, w) map, True where (i - offset) % k == 0 and (j - offset) % k == 0.

    ``interval`` None or 0 switches the prior off (all False).
    """
    k = check_grid_interval(interval, offset)
    if not k:
        return torch.zeros(h, w, dtype=torch.bool, device=device)
    rows = (torch.arange(h, device=device) - offset) % k == 0
    cols = (torch.arange(w, device=device) - offset) % k == 0
    return rows[:, None] & cols[None, :]


def apply_grid_prior(mask: torch.Tensor, interval: int | None, offset: int = 0) -> torch.Tensor:
    """Force grid positions of a (B, 1, H, W) mask to 1 (no gradient flows through them)."""
    if not check_grid_interval(interval, offset):
        return mask
    grid = grid_prior_mask(mask.shape[-2], mask.shape[-1], interval, offset, mask.device)
    return torch.where(grid, torch.ones((), dtype=mask.dtype, device=mask.device), mask)
