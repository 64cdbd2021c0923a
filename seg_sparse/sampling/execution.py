"""Inference of a :class:`SparseBottleneck` that computes only where its masks sampled.

The training ("masked") forward computes every conv densely and multiplies by the masks; it is
the reference. At inference this module turns the masks into skipped work (see
docs/design.md, "Execution paths"):

1. BN is folded into the conv before it (:mod:`.fold`); feature maps are channels-last, so a
   position's channels are one contiguous row and positions are flat indices over (B, H, W).
2. The mask predictors stay dense (one output channel each: cheap; computed as in training by
   :func:`~.masks.paired_mask_logits`, so the masks are the same).
3. conv1 + ReLU at the m1 positions (row gather, one GEMM), written into a zero map; the
   other positions are filled by the normalized Gaussian interpolation as a sparse matrix over
   the computed rows (:mod:`.sparse_interpolation`).
4. conv2 at the m2 positions: integer 3x3 neighbour gather + GEMM, or for DCN the offsets at
   those positions (same gather on the block input) and the bilinear taps + GEMM
   (:func:`seg_sparse.ops.conv2d_at` / :func:`~seg_sparse.ops.deform_conv2d_at`).
5. conv3 + BN at the m2 positions, then the interpolation of conv3's output. conv3 + BN is
   affine and the weights are normalized, so this equals the masked path's "interpolate,
   then conv3" exactly where a sampled neighbour is in reach; where the eps clamp acts the
   missing share of the BN shift is added back, so it matches there too.
6. Residual add (downsample dense, BN folded) and ReLU over all positions.

Per layer, a gather pays off only below some density; above it the layer runs densely on the
full map (still folded, channels-last) and the masks are applied as in the masked path. The
``'auto'`` mode picks per layer from the crossover measured per device, :data:`GATHER_BELOW`
(``seg-sparse bench --crossover`` shows the figures behind it), and on devices where the whole
executor loses (:data:`MASKED_AUTO_DEVICES`: CUDA) keeps sampling blocks on the masked path;
``'sparse'`` always gathers (the path the equivalence tests pin down).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import conv2d_at, deform_conv2d, deform_conv2d_at
from .fold import fold_conv_bn
from .sparse_interpolation import InterpolationPlan, plan_interpolation

if TYPE_CHECKING:
    from .bottleneck import SparseBottleneck

T = TypeVar("T")

#: Execution modes of a block at inference (training always runs ``'masked'``).
EXECUTION_MODES = ("masked", "sparse", "auto")

#: ``'auto'`` gathers a layer only when its mask density is below this (per device type); at
#: or above it the layer runs on the full map, which is then faster (the crossover that
#: ``seg-sparse bench --crossover`` measures; docs/benchmarks.md).
GATHER_BELOW: dict[str, float] = {"cpu": 0.8}

#: Device types where ``'auto'`` runs sampling blocks on the masked path. On an H100 the
#: gather path is bound by kernel launches and host syncs (about 200 ms for the paper's
#: backbone at 512x1024 at any density, against 30-40 ms masked; docs/benchmarks.md).
MASKED_AUTO_DEVICES = frozenset({"cuda"})

_gather_override: float | None = None


def check_execution(mode: str) -> str:
    """Validated execution mode; ValueError naming the bad value."""
    if mode not in EXECUTION_MODES:
        raise ValueError(f"execution must be one of {EXECUTION_MODES}, got {mode!r}")
    return mode


def uses_executor(mode: str, training: bool, sampling: bool, device_type: str) -> bool:
    """Whether a block runs :class:`BlockExecutor` (else its masked forward). Never while
    tracing, compiling or exporting: the executor's row sets have data-dependent sizes and its
    weight cache keys on ``data_ptr()``; the masked path is the traceable one."""
    if training or mode == "masked" or torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    return not (mode == "auto" and sampling and device_type in MASKED_AUTO_DEVICES)


def gather_below(mode: str, device_type: str,
                 crossover: Mapping[str, float] = GATHER_BELOW) -> float:
    """Density under which a layer is gathered: always for ``'sparse'``, else the crossover
    (per device type: the blocks' :data:`GATHER_BELOW` unless a layer kind measured its own)."""
    if mode == "sparse":
        return 2.0
    if _gather_override is not None:
        return _gather_override
    return crossover.get(device_type, 0.0)


@contextmanager
def crossover_override(density: float) -> Iterator[None]:
    """Temporarily gather under ``density`` in ``'auto'`` (0: never), for benchmarks."""
    global _gather_override
    saved, _gather_override = _gather_override, float(density)
    try:
        yield
    finally:
        _gather_override = saved


@dataclass
class FoldedBlock:
    """Inference weights of one block: BN folded, laid out for row GEMMs."""

    w1: torch.Tensor  # (Cin, P)
    b1: torch.Tensor
    w2: torch.Tensor  # (Cout, Cin/g, 3, 3)
    b2: torch.Tensor
    w3: torch.Tensor  # (P, 4P)
    b3: torch.Tensor
    offset_w: torch.Tensor | None  # (18, Cin, 3, 3)
    offset_b: torch.Tensor | None
    down_w: torch.Tensor | None  # (Cin, 4P) of a folded 1x1 downsample
    down_b: torch.Tensor | None


def _fold_downsample(down: nn.Module | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A (1x1 conv, BN) downsample folded into (Cin, Cout) + bias; anything else: (None, None)."""
    if not (isinstance(down, nn.Sequential) and len(down) == 2):
        return None, None
    conv, bn = down
    if not (isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.groups == 1
            and conv.padding == (0, 0) and isinstance(bn, nn.modules.batchnorm._BatchNorm)):
        return None, None
    w, b = fold_conv_bn(conv.weight, bn, conv.bias)
    return w.flatten(1).t().contiguous(), b


def fold_block(block: SparseBottleneck) -> FoldedBlock:
    """Fold every BN of ``block`` into its conv (eval statistics)."""
    w1, b1 = fold_conv_bn(block.conv1.weight, block.bn1)
    w2, b2 = fold_conv_bn(block.conv2.weight, block.bn2)
    w3, b3 = fold_conv_bn(block.conv3.weight, block.bn3)
    offset_w = offset_b = None
    if block.with_dcn:
        offset_w, offset_b = block.conv2_offset.weight, block.conv2_offset.bias
    down_w, down_b = _fold_downsample(block.downsample)
    return FoldedBlock(
        w1=w1.flatten(1).t().contiguous(), b1=b1, w2=w2.contiguous(), b2=b2,
        w3=w3.flatten(1).t().contiguous(), b3=b3, offset_w=offset_w, offset_b=offset_b,
        down_w=down_w, down_b=down_b,
    )


def _state_key(block: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer of ``block`` is replaced or modified in place."""
    return tuple((t.data_ptr(), t._version) for t in (*block.parameters(), *block.buffers()))


def _rows(x: torch.Tensor) -> torch.Tensor:
    """(B*H*W, C) rows of a channels-last (B, C, H, W) tensor (a view)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


class FoldCache:
    """Folded inference weights of one module, rebuilt when any of its parameters or buffers
    changes (``load_state_dict``, an optimizer step, ``.to()``)."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value: Any = None

    def get(self, module: nn.Module, fold: Callable[[], T]) -> T:
        key = _state_key(module)
        if self._value is None or key != self._key:
            with torch.no_grad():
                self._value = fold()
            self._key = key
        return self._value


class BlockExecutor:
    """Runs one block's inference from its masks; folded weights are cached until the
    block's parameters or buffers change (:class:`FoldCache`)."""

    def __init__(self) -> None:
        self._cache = FoldCache()

    def folded(self, block: SparseBottleneck) -> FoldedBlock:
        return self._cache.get(block, lambda: fold_block(block))

    @torch.no_grad()
    def __call__(
        self,
        block: SparseBottleneck,
        x: torch.Tensor,
        mask1: torch.Tensor | None,
        mask2: torch.Tensor | None,
        gather_below: float,
    ) -> torch.Tensor:
        """Block output for channels-last input ``x`` (B, C, H, W) and masks (None: ones)."""
        fw = self.folded(block)
        b, _, h, w = x.shape
        h1 = _conv1(fw, block, _rows(x), mask1, gather_below).view(b, h, w, -1)
        out_hw = ((h - 1) // block.stride + 1, (w - 1) // block.stride + 1)
        out = _identity_plus_shift(fw, block, x)  # + b3: conv3's BN shift, added once
        _add_conv3(out, fw, block, x, h1, mask2, out_hw, gather_below)
        return out.relu_().view(b, *out_hw, -1).permute(0, 3, 1, 2)


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


def _plan(interp: nn.Module, mask: torch.Tensor, src: _Sources) -> InterpolationPlan:
    kernel = interp.kernel_1d(torch.float64, mask.device)
    return plan_interpolation(mask, kernel, interp.eps, src.column, src.binary)


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
        out.index_copy_(0, src.index, computed if src.binary else computed * flat[src.index, None])
    else:
        computed = compute_all()
        out = computed.clone() if src.binary else computed * flat[:, None]
    plan = _plan(interp, mask, src)
    fill = plan.fill(computed)
    if plan.keep is None:
        out.index_copy_(0, plan.targets, fill)
    else:
        out.index_add_(0, plan.targets, fill * plan.keep[:, None])
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
    if mask is None:
        out.addmm_(compute_all(), weight)
        return
    src = _sources(mask, gather_below, rows_at_index=True)  # the layer runs at the sources
    if not src.gathered and src.is_everything(out.shape[0]):
        out.addmm_(compute_all(), weight)
        return
    inputs = compute_at(src.index) if src.gathered \
        else compute_all().index_select(0, src.index)
    rows = inputs @ weight
    flat = mask.reshape(-1)
    out.index_add_(0, src.index, rows if src.binary else rows * flat[src.index, None])
    plan = _plan(interp, mask, src)
    fill = plan.fill(rows)
    out.index_add_(0, plan.targets, fill if plan.keep is None else fill * plan.keep[:, None])


def _conv1(fw: FoldedBlock, block: SparseBottleneck, rows: torch.Tensor,
           mask: torch.Tensor | None, gather_below: float) -> torch.Tensor:
    """conv1 + BN + ReLU, interpolated where m1 did not sample: (B*H*W, P) rows."""
    return sampled_rows(
        lambda index: torch.addmm(fw.b1, rows.index_select(0, index), fw.w1).relu_(),
        lambda: torch.addmm(fw.b1, rows, fw.w1).relu_(),
        rows.shape[0], mask, None if mask is None else block.interp1, gather_below)


def _conv2_dense(fw: FoldedBlock, block: SparseBottleneck, x: torch.Tensor,
                 h1: torch.Tensor) -> torch.Tensor:
    """conv2 + BN + ReLU on the full map: (B*H2*W2, P) rows."""
    feats = h1.permute(0, 3, 1, 2)
    geometry = dict(stride=block.stride, padding=block.dilation, dilation=block.dilation)
    if block.with_dcn:
        offset = F.conv2d(x, fw.offset_w, fw.offset_b, **geometry)
        out = deform_conv2d(feats.contiguous(), offset, fw.w2, fw.b2, **geometry)
    else:
        out = F.conv2d(feats, fw.w2, fw.b2, groups=block.groups, **geometry)
    return out.relu_().permute(0, 2, 3, 1).reshape(-1, out.shape[1])


def _conv2_at(fw: FoldedBlock, block: SparseBottleneck, x: torch.Tensor, h1: torch.Tensor,
              index: torch.Tensor) -> torch.Tensor:
    """conv2 + BN + ReLU at flat output positions ``index``: (N, P) rows (for DCN the
    offsets are computed at those positions too)."""
    geometry = dict(stride=block.stride, padding=block.dilation, dilation=block.dilation)
    if block.with_dcn:
        offset = conv2d_at(x.permute(0, 2, 3, 1), index, fw.offset_w, fw.offset_b, **geometry,
                           check_positions=False)
        out = deform_conv2d_at(h1, index, offset, fw.w2, fw.b2, **geometry,
                               check_positions=False)
    else:
        out = conv2d_at(h1, index, fw.w2, fw.b2, **geometry, check_positions=False)
    return out.relu_()


def _add_conv3(out: torch.Tensor, fw: FoldedBlock, block: SparseBottleneck, x: torch.Tensor,
               h1: torch.Tensor, mask: torch.Tensor | None, out_hw: tuple[int, int],
               gather_below: float) -> None:
    """Add conv3's output (without its BN shift), interpolated where m2 did not sample, to
    ``out`` (B*H2*W2, 4P) rows.

    ``out`` already holds the shift b3 at every position (see :func:`add_sampled_affine`).
    """
    if mask is not None and mask.shape[-2:] != out_hw:
        raise RuntimeError(f"mask2 of shape {tuple(mask.shape)} does not match conv2's output "
                           f"size {out_hw}")
    add_sampled_affine(out, partial(_conv2_at, fw, block, x, h1),
                       partial(_conv2_dense, fw, block, x, h1), fw.w3, mask,
                       None if mask is None else block.interp2, gather_below)


def _identity_plus_shift(fw: FoldedBlock, block: SparseBottleneck,
                         x: torch.Tensor) -> torch.Tensor:
    """A new (B*H2*W2, 4P) tensor: the residual branch plus conv3's BN shift b3."""
    if block.downsample is None:
        return _rows(x) + fw.b3
    if fw.down_w is None:
        return _rows(block.downsample(x).contiguous(memory_format=torch.channels_last)) + fw.b3
    s = block.downsample[0].stride
    sub = x[:, :, :: s[0], :: s[1]] if s != (1, 1) else x
    return torch.addmm(fw.down_b + fw.b3, sub.permute(0, 2, 3, 1).reshape(-1, x.shape[1]),
                       fw.down_w)
