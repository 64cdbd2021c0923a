"""Rows computed where a mask sampled, the rest interpolated: what every executed layer shares.

A sampled layer at inference computes its output rows (positions of a channels-last map,
flat over (B, H, W)) only where its mask is non-zero and fills the others by the normalized
Gaussian interpolation as a sparse product over the computed rows
(:mod:`..sparse_interpolation`). :func:`sampled_rows` does this for a layer whose output is
interpolated (conv1 of a block, a head conv); :func:`add_sampled_affine` for an affine layer
applied after the interpolation in the masked path (conv3 + BN of a block, a head's
classifier), which runs only at the sampled positions and interpolates its own output.
Both gather the layer below a density (``gather_below``) and run it on the full map above.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from ..sparse_interpolation import InterpolationMatrix, interpolation_matrix

T = TypeVar("T")


def _state_key(module: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer of ``module`` is replaced or modified in place
    (never read under tracing: :func:`~.policy.select_executor` runs the masked path there)."""
    return tuple((t.data_ptr(), t._version) for t in (*module.parameters(), *module.buffers()))


def channels_last_rows(x: torch.Tensor) -> torch.Tensor:
    """(B*H*W, C) rows of a channels-last (B, C, H, W) tensor (a view)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


class FoldCache:
    """Folded inference weights of a layer, one entry per backend, each rebuilt when any
    parameter or buffer of the module it was folded from changes (``load_state_dict``, an
    optimizer step, ``.to()``)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tuple, Any]] = {}

    def get(self, module: nn.Module, name: str, fold: Callable[[], T]) -> T:
        """``fold()``'s value for ``name`` (e.g. the backend's), cached until ``module``
        changes."""
        key = _state_key(module)
        entry = self._entries.get(name)
        if entry is None or entry[0] != key:
            with torch.no_grad():
                entry = (key, fold())
            self._entries[name] = entry
        return entry[1]

    def clear(self) -> None:
        self._entries.clear()


@dataclass
class _Sources:
    """Where a mask is non-zero, whether the layer is gathered there, and how interpolation
    indexes the computed rows."""

    index: torch.Tensor  # flat positions with mask > 0
    column: torch.Tensor  # (B*H*W,) row of each position in the source matrix, -1 if none
    binary: bool
    gathered: bool  # the layer runs at ``index`` only (else on the full map)

    def is_everything(self, total: int) -> bool:
        return self.binary and self.index.numel() == total


def _sources(mask: torch.Tensor, gather_below: float, rows_at_index: bool = False) -> _Sources:
    """One pass over ``mask``: its sampled positions; the layer is gathered below density
    ``gather_below``. Source rows are the computed rows in index order when gathered or
    ``rows_at_index`` (a layer computed at the sources either way), else the positions."""
    flat = mask.reshape(-1)
    index = (flat > 0).nonzero().squeeze(1)
    gathered = index.numel() < gather_below * flat.numel()
    column = torch.full_like(flat, -1, dtype=torch.long)
    if gathered or rows_at_index:
        column[index] = torch.arange(index.numel(), device=flat.device)
    else:
        column[index] = index
    binary = bool(((mask == 0) | (mask == 1)).all())
    return _Sources(index, column, binary, gathered)


def _interpolation_matrix(interp: nn.Module, mask: torch.Tensor,
                          src: _Sources) -> InterpolationMatrix:
    kernel = interp.kernel_1d(torch.float64, mask.device)
    return interpolation_matrix(mask, kernel, interp.eps, src.column, src.binary)


def sampled_rows(compute_at: Callable[[torch.Tensor], torch.Tensor],
                 compute_all: Callable[[], torch.Tensor], total: int,
                 mask: torch.Tensor | None, interp: nn.Module | None,
                 gather_below: float) -> torch.Tensor:
    """(B*H*W, C) rows of a layer computed where ``mask`` is non-zero and filled by ``interp``
    elsewhere: ``interp(layer(x), mask)`` of the masked path.

    ``compute_at(index)`` gives the layer's rows at flat positions ``index``,
    ``compute_all()`` at every position; the first runs below density ``gather_below``.
    Without a mask (a dense layer) ``interp`` may be None.
    """
    if mask is None:
        return compute_all()
    flat = mask.reshape(-1)
    src = _sources(mask, gather_below)
    if src.is_everything(total):
        return compute_all()
    if src.gathered:
        computed = compute_at(src.index)
        # binary: sources and targets partition the map, every row is written below
        out = computed.new_empty(total, computed.shape[1]) if src.binary \
            else computed.new_zeros(total, computed.shape[1])
        out.index_copy_(0, src.index, computed if src.binary
                        else computed * flat[src.index, None].to(computed.dtype))
    else:
        computed = compute_all()
        out = computed.clone() if src.binary else computed * flat[:, None].to(computed.dtype)
    matrix = _interpolation_matrix(interp, mask, src)
    fill = matrix.fill(computed).to(out.dtype)  # under autocast the layer's dtype throughout
    if matrix.keep is None:
        out.index_copy_(0, matrix.targets, fill)
    else:
        out.index_add_(0, matrix.targets, fill * matrix.keep[:, None].to(out.dtype))
    return out


def add_sampled_affine(out: torch.Tensor, compute_at: Callable[[torch.Tensor], torch.Tensor],
                       compute_all: Callable[[], torch.Tensor], weight: torch.Tensor,
                       mask: torch.Tensor | None, interp: nn.Module | None,
                       gather_below: float) -> None:
    """Add ``interp(rows, mask) @ weight`` to ``out`` (B*H*W, C) with the affine layer
    ``@ weight`` (without its bias) applied only where ``mask`` is non-zero and its output
    interpolated everywhere else.

    ``compute_at`` / ``compute_all`` give the input rows as for :func:`sampled_rows`; which one
    runs follows ``gather_below``. The masked path interpolates the layer's input, then applies
    the layer (conv3 + BN, a 1x1 classifier: affine). The interpolation weights are
    normalized, so this is the same where a computed neighbour is in reach; ``out`` must
    already hold the layer's bias b at every position, which makes it the same where the eps
    clamp acts too: at a target the masked path gives S @ (y + b) + (1 - coverage) b = S @ y + b
    (S's rows sum to the coverage). Without a mask (a dense layer) ``interp`` may be None.
    """
    # under autocast the input rows and their product come in the autocast dtype: every
    # write into ``out`` is cast to out's dtype
    if mask is None:
        out.addmm_(compute_all().to(out.dtype), weight.to(out.dtype))
        return
    src = _sources(mask, gather_below, rows_at_index=True)  # the layer runs at the sources
    if not src.gathered and src.is_everything(out.shape[0]):
        out.addmm_(compute_all().to(out.dtype), weight.to(out.dtype))
        return
    inputs = compute_at(src.index) if src.gathered \
        else compute_all().index_select(0, src.index)
    rows = (inputs @ weight).to(out.dtype)
    flat = mask.reshape(-1).to(out.dtype)
    out.index_add_(0, src.index, rows if src.binary else rows * flat[src.index, None])
    matrix = _interpolation_matrix(interp, mask, src)
    fill = matrix.fill(rows).to(out.dtype)
    keep = None if matrix.keep is None else matrix.keep[:, None].to(out.dtype)
    out.index_add_(0, matrix.targets, fill if keep is None else fill * keep)
