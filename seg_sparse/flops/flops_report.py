"""The FLOPs convention of docs/design.md, applied to a measured per-conv MAC profile.

All counts are multiply-accumulates (MACs), ``k*k*Cin*Cout*Hout*Wout / groups`` per conv, as in
the paper and in ``mmengine.analysis``; "GFLOPs" below means MACs / 1e9. Only convolutions and
linear layers are counted (no BN, activations, pooling or resizing).

Two figures per model:

* **dense**: every conv of the network without its sampling machinery (DCN offset convs
  included, mask predictors and interpolation excluded) -- what the dense twin costs;
* **sparse** ("as executed", only when densities are given): per sparse block with mask
  densities (d1, d2)::

      conv1*d1 + (conv2 + conv3 + offset)*d2 + mask1 + mask2
      + interp(m1)*d1*(1-d1) + interp(m2)*d2*(1-d2) + downsample

  where interp(m1) is a k x k single-output-channel conv over conv1's output channels (P) at
  conv1's resolution and interp(m2) the same over conv3's output channels (4P) at the block's
  output resolution, k the block's interpolation window (``interp_window``, 7 by default).
  Stem, downsample convs and dense blocks stay dense. At d = 1 the sparse figure is the dense
  one plus the mask predictors. A sampled decode head (``SparseFCNHead``) counts per conv with
  density d: ``conv*d + mask + interp*d*(1-d)``, the classifier at the last conv's density
  and that conv's interpolation over the classifier's output channels (the logits are what
  is interpolated); other heads stay dense (:class:`HeadLayerFlops`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from prettytable import PrettyTable

GIGA = 1e9

#: Block roles executed at the density of mask 1 / mask 2 (docs/design.md, "FLOPs convention").
D1_ROLES = ("conv1",)
D2_ROLES = ("conv2", "conv3", "offset")
#: Roles that always run densely and belong to the network itself.
DENSE_ROLES = ("downsample", "other")
#: The sampling machinery: counted (densely) only in the sparse figure.
MASK_ROLES = ("mask1", "mask2")
ROLES = D1_ROLES + D2_ROLES + DENSE_ROLES + MASK_ROLES

Densities = Mapping[str, tuple[float, float]]
HeadDensities = Mapping[str, float]


def _giga(macs: float) -> float:
    return macs / GIGA


@dataclass(frozen=True)
class BlockFlops:
    """MACs of one bottleneck block at full density, split by the role of each conv.

    ``interp1`` / ``interp2`` are the interpolation costs before the d*(1-d) weighting
    (``k*k*channels*H*W`` at conv1's output and at the block's output, k the block's window).
    """

    name: str
    sparse: bool
    macs: Mapping[str, int]
    interp1: int = 0
    interp2: int = 0

    def role(self, name: str) -> int:
        return int(self.macs.get(name, 0))

    @property
    def dense_macs(self) -> int:
        """All convs of the block except the mask predictors."""
        return sum(self.role(r) for r in D1_ROLES + D2_ROLES + DENSE_ROLES)

    @property
    def mask_macs(self) -> int:
        return sum(self.role(r) for r in MASK_ROLES)

    def sparse_macs(self, d1: float, d2: float) -> float:
        """Executed MACs at mask densities (d1, d2); dense blocks must have d1 = d2 = 1."""
        if not self.sparse:
            return float(self.dense_macs)
        return (
            sum(self.role(r) for r in D1_ROLES) * d1
            + sum(self.role(r) for r in D2_ROLES) * d2
            + sum(self.role(r) for r in DENSE_ROLES)
            + self.mask_macs
            + self.interp1 * d1 * (1.0 - d1)
            + self.interp2 * d2 * (1.0 - d2)
        )


@dataclass(frozen=True)
class HeadLayerFlops:
    """MACs of one sampled conv of the decode head at full density.

    ``macs``: the convs run at this conv's density (the conv; for the last, the classifier
    too); ``mask_macs``: its mask predictor (dense); ``interp``: k*k*channels*H*W of its
    interpolation before the d*(1-d) weighting, channels of the tensor interpolated (the
    conv's output; the classifier's logits for the last conv).
    """

    name: str
    macs: int
    mask_macs: int
    interp: int

    def sparse_macs(self, d: float) -> float:
        return self.macs * d + self.mask_macs + self.interp * d * (1.0 - d)


def _check_density(name: str, value: Any) -> tuple[float, float]:
    try:
        d1, d2 = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"density of block {name!r} must be a pair (d1, d2), got {value!r}"
        ) from None
    for d in (d1, d2):
        if not 0.0 <= d <= 1.0:
            raise ValueError(f"density of block {name!r} must lie in [0, 1], got {value!r}")
    return d1, d2


def normalize_densities(
    densities: Densities, blocks: tuple[BlockFlops, ...]
) -> dict[str, tuple[float, float]]:
    """Validate ``densities`` against the blocks (names relative to the backbone; a leading
    ``backbone.`` is accepted). Every sparse block needs a value; dense blocks may only be 1."""
    by_name = {b.name: b for b in blocks}
    result: dict[str, tuple[float, float]] = {}
    for raw_name, value in densities.items():
        name = raw_name.removeprefix("backbone.")
        if name not in by_name:
            raise ValueError(
                f"density given for unknown block {raw_name!r}; blocks of this backbone: "
                f"{sorted(by_name)}"
            )
        d1, d2 = _check_density(raw_name, value)
        if not by_name[name].sparse and (d1, d2) != (1.0, 1.0):
            raise ValueError(
                f"block {raw_name!r} has no sampling masks (dense), so its density must be "
                f"(1, 1), got {value!r}"
            )
        result[name] = (d1, d2)
    missing = [b.name for b in blocks if b.sparse and b.name not in result]
    if missing:
        raise ValueError(f"no density given for sparse blocks {missing}")
    return result


def normalize_head_densities(
    densities: HeadDensities, layers: tuple[HeadLayerFlops, ...]
) -> dict[str, float]:
    """Validate head densities (conv names relative to the head; a leading ``decode_head.`` is
    accepted): one value in [0, 1] for every sampled head conv."""
    known = [layer.name for layer in layers]
    result: dict[str, float] = {}
    for raw_name, value in densities.items():
        name = raw_name.removeprefix("decode_head.")
        if name not in known:
            raise ValueError(f"density given for unknown head conv {raw_name!r}; sampled convs "
                             f"of this head: {known}")
        try:
            d = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"density of head conv {raw_name!r} must be a number, got "
                             f"{value!r}") from None
        if not 0.0 <= d <= 1.0:
            raise ValueError(f"density of head conv {raw_name!r} must lie in [0, 1], got "
                             f"{value!r}")
        result[name] = d
    missing = [n for n in known if n not in result]
    if missing:
        raise ValueError(f"no density given for sampled head convs {missing}")
    return result


@dataclass(frozen=True)
class FlopsReport:
    """MAC profile of a segmentor at one input shape, optionally with measured densities.

    Build it with :func:`seg_sparse.flops.count_flops`; derive the executed cost for other
    densities with :meth:`with_densities` (no new forward pass needed).
    """

    input_shape: tuple[int, int]
    backbone_other: int  # stem and every backbone conv outside bottleneck blocks
    head: int  # neck (if any) + decode head; the auxiliary head does not run at inference
    blocks: tuple[BlockFlops, ...] = ()
    densities: dict[str, tuple[float, float]] | None = field(default=None)
    head_layers: tuple[HeadLayerFlops, ...] = ()  # sampled convs of the decode head
    head_densities: dict[str, float] | None = field(default=None)

    def with_densities(self, densities: Densities | None,
                       head_densities: HeadDensities | None = None) -> FlopsReport:
        """The executed figures at block densities ``densities`` and, for a sampled head,
        ``head_densities`` (either None: that part dense)."""
        return replace(
            self,
            densities=None if densities is None else normalize_densities(densities, self.blocks),
            head_densities=None if head_densities is None
            else normalize_head_densities(head_densities, self.head_layers),
        )

    @property
    def is_sparse(self) -> bool:
        return any(b.sparse for b in self.blocks) or bool(self.head_layers)

    @property
    def has_densities(self) -> bool:
        return self.densities is not None or self.head_densities is not None

    # -- MACs -------------------------------------------------------------------------------
    @property
    def backbone_dense_macs(self) -> int:
        return self.backbone_other + sum(b.dense_macs for b in self.blocks)

    @property
    def mask_macs(self) -> int:
        return sum(b.mask_macs for b in self.blocks)

    def block_density(self, block: BlockFlops) -> tuple[float, float]:
        if self.densities is None:
            raise ValueError("this report has no densities")
        return self.densities.get(block.name, (1.0, 1.0))

    @property
    def backbone_sparse_macs(self) -> float | None:
        if self.densities is None:
            return None
        return self.backbone_other + sum(
            b.sparse_macs(*self.block_density(b)) for b in self.blocks
        )

    @property
    def mask_macs_head(self) -> int:
        return sum(layer.mask_macs for layer in self.head_layers)

    @property
    def head_sparse_macs(self) -> float | None:
        """The decode head as executed (None without head densities)."""
        if self.head_densities is None:
            return None
        return self.head + sum(layer.sparse_macs(self.head_densities[layer.name]) - layer.macs
                               for layer in self.head_layers)

    @property
    def total_sparse_macs(self) -> float | None:
        """Backbone + head as executed, each part dense where it has no densities (None
        when neither has)."""
        if not self.has_densities:
            return None
        backbone = self.backbone_sparse_macs
        head = self.head_sparse_macs
        return (self.backbone_dense_macs if backbone is None else backbone) + \
            (self.head if head is None else head)

    # -- GFLOPs -----------------------------------------------------------------------------
    @property
    def backbone_dense(self) -> float:
        return _giga(self.backbone_dense_macs)

    @property
    def head_gflops(self) -> float:
        return _giga(self.head)

    @property
    def total_dense(self) -> float:
        return _giga(self.backbone_dense_macs + self.head)

    @property
    def backbone_sparse(self) -> float | None:
        macs = self.backbone_sparse_macs
        return None if macs is None else _giga(macs)

    @property
    def head_sparse(self) -> float | None:
        macs = self.head_sparse_macs
        return None if macs is None else _giga(macs)

    @property
    def total_sparse(self) -> float | None:
        macs = self.total_sparse_macs
        return None if macs is None else _giga(macs)

    def mean_density(self) -> float | None:
        """Mean over sparse blocks of (d1 + d2) / 2 (None without densities or sparse blocks)."""
        if self.densities is None:
            return None
        pairs = [self.block_density(b) for b in self.blocks if b.sparse]
        if not pairs:
            return None
        return sum(d1 + d2 for d1, d2 in pairs) / (2 * len(pairs))

    def mean_head_density(self) -> float | None:
        """Mean over the sampled head convs of their density (None without head densities)."""
        if not self.head_densities:
            return None
        return sum(self.head_densities.values()) / len(self.head_densities)

    # -- output -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary in GFLOPs (= GMACs)."""
        sparse = None
        if self.has_densities:
            head = self.head_sparse
            sparse = {
                "backbone": self.backbone_sparse,
                "head": self.head_gflops if head is None else head,
                "total": self.total_sparse,
            }
        blocks = []
        for b in self.blocks:
            row: dict[str, Any] = {
                "name": b.name,
                "sparse": b.sparse,
                "dense": _giga(b.dense_macs),
                "mask_predictors": _giga(b.mask_macs),
            }
            if self.densities is not None:
                d1, d2 = self.block_density(b)
                row.update(d1=d1, d2=d2, executed=_giga(b.sparse_macs(d1, d2)))
            blocks.append(row)
        return {
            "unit": "GFLOPs = multiply-accumulates / 1e9 (convs and linear layers)",
            "input_shape": list(self.input_shape),
            "dense": {
                "backbone": self.backbone_dense,
                "head": self.head_gflops,
                "total": self.total_dense,
            },
            "sparse": sparse,
            "mask_predictors": _giga(self.mask_macs + self.mask_macs_head),
            "mean_density": self.mean_density(),
            "mean_head_density": self.mean_head_density(),
            "blocks": blocks,
            "head_layers": [self._head_layer_dict(layer) for layer in self.head_layers],
        }

    def _head_layer_dict(self, layer: HeadLayerFlops) -> dict[str, Any]:
        row: dict[str, Any] = {"name": layer.name, "dense": _giga(layer.macs),
                               "mask_predictor": _giga(layer.mask_macs)}
        if self.head_densities is not None:
            d = self.head_densities[layer.name]
            row.update(density=d, executed=_giga(layer.sparse_macs(d)))
        return row

    def format_table(self, title: str | None = None, extra_rows: Mapping[str, Any] = (),
                     backbone_only: bool = False) -> str:
        """One table: a row per bottleneck block and sampled head conv, then backbone / head /
        total.

        Without densities only the dense column is shown. ``extra_rows`` (name -> value) are
        appended with the value in the first number column, e.g. ``{"mIoU": 71.2}``.
        ``backbone_only`` (detection: the rest of the network is not counted) ends the table
        with a "backbone only" row instead of head and total rows that would read 0 and equal
        the backbone.
        """
        has_d = self.has_densities
        mark_dense = self.is_sparse  # label the dense blocks of a partly sparse backbone

        def fmt(v: float | None, digits: int = 4) -> str:
            return "-" if v is None else f"{v:.{digits}f}"

        table = PrettyTable()
        table.field_names = (
            ["", "d1", "d2", "GFLOPs dense", "GFLOPs executed"] if has_d else ["", "GFLOPs dense"]
        )
        table.align = "r"
        table.align[""] = "l"

        def add(label: str, dense: str, executed: str = "", d1: str = "", d2: str = "",
                divider: bool = False) -> None:
            row = [label, d1, d2, dense, executed] if has_d else [label, dense]
            table.add_row(row, divider=divider)

        if self.backbone_other:
            stem = fmt(_giga(self.backbone_other))
            add("stem & other", stem, stem if has_d else "", divider=not self.blocks)
        for i, b in enumerate(self.blocks):
            label = f"{b.name} (dense)" if mark_dense and not b.sparse else b.name
            last = i == len(self.blocks) - 1
            if self.densities is not None:
                d1, d2 = self.block_density(b)
                add(label, fmt(_giga(b.dense_macs)), fmt(_giga(b.sparse_macs(d1, d2))),
                    fmt(d1, 3), fmt(d2, 3), divider=last)
            else:
                add(label, fmt(_giga(b.dense_macs)), fmt(_giga(b.dense_macs)) if has_d else "",
                    divider=last)
        for layer in self.head_layers:
            if self.head_densities is not None:
                d = self.head_densities[layer.name]
                add(f"head {layer.name}", fmt(_giga(layer.macs)),
                    fmt(_giga(layer.sparse_macs(d))), d1=fmt(d, 3))
            else:
                add(f"head {layer.name}", fmt(_giga(layer.macs)))
        backbone_executed = self.backbone_sparse if self.densities is not None \
            else self.backbone_dense
        head_executed = self.head_sparse if self.head_densities is not None else self.head_gflops
        if backbone_only:
            add("backbone only (FPN and heads not counted)", fmt(self.backbone_dense),
                fmt(backbone_executed) if has_d else "")
        else:
            add("backbone", fmt(self.backbone_dense), fmt(backbone_executed) if has_d else "")
            add("head", fmt(self.head_gflops), fmt(head_executed) if has_d else "")
            add("total", fmt(self.total_dense), fmt(self.total_sparse))
        mean = self.mean_density()
        if mean is not None:
            add("mean density", "", "", d1=fmt(mean, 3))
        mean_head = self.mean_head_density()
        if mean_head is not None:
            add("mean head density", "", "", d1=fmt(mean_head, 3))
        for key, value in dict(extra_rows).items():
            add(key, value if isinstance(value, str) else fmt(value, 2))
        h, w = self.input_shape
        header = title or "GFLOPs (multiply-accumulates / 1e9)"
        return f"{header} at input {h}x{w}\n{table.get_string()}"
