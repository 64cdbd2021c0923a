"""Where the model computes: sampling density per ground-truth class, and on class boundaries
versus class interiors, per block and per mask.

The paper's claim is that computation concentrates on informative regions; these figures
measure it against the labels. Definitions (docs/analysis.md, "Where the model computes"):

* **Grid.** Each mask is compared with the ground truth on the mask's own grid (feature
  resolution: stride 4 for layer1, 8 from layer2 on in the dilated FCN). A cell's label is the
  ground-truth label of the image pixel at the cell's centre. Only the part of the network
  input that holds the image is used (detection batches padded at the bottom / right are cut
  first, :func:`~seg_sparse.visualization.image_geometry`).
* **Boundary band.** A cell with a valid label is a *boundary* cell when some cell within
  Chebyshev distance ``band`` of it on that grid (default 1: its 3x3 neighbourhood, i.e. a band
  of ``band`` x stride image pixels on either side of a class edge) carries another valid
  label; every other valid cell is an *interior* cell. Cells labelled ``ignore_index`` (255)
  are in neither and make no neighbour a boundary cell.
* **Density of a region** = computed cells in it / cells in it (the positions the mask's
  sampler computes, :meth:`~seg_sparse.sampling.MaskSampler.computed`), summed over all
  evaluated images: a small region of one image weighs as much as it covers.
* A block's density is ``(d1 + d2) / 2`` (mask1 for conv1, mask2 for conv2 + conv3), and a
  model's is the mean over its sampling blocks, as ``density_mean`` is; the boundary /
  interior **ratio** is the model's boundary density over its interior density (> 1: the
  boundaries are computed more densely). A sampled decode head's convs are reported per conv.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seg_sparse.sampling import sampled_decode_head
from seg_sparse.visualization import image_geometry, sampling_blocks

IGNORE_INDEX = 255
DEFAULT_BAND = 1
REGIONS = ("boundary", "interior")


def labels_on_grid(labels: Tensor, grid: tuple[int, int]) -> Tensor:
    """(h, w) labels of a grid laid over the (H, W) label map: each cell takes the label of the
    pixel at its centre."""
    height, width = labels.shape[-2:]
    rows = ((torch.arange(grid[0], device=labels.device) + 0.5) * height / grid[0]).long()
    cols = ((torch.arange(grid[1], device=labels.device) + 0.5) * width / grid[1]).long()
    return labels[rows.clamp(max=height - 1)][:, cols.clamp(max=width - 1)]


def boundary_cells(labels: Tensor, band: int = DEFAULT_BAND,
                   ignore_index: int = IGNORE_INDEX) -> Tensor:
    """(h, w) bool: valid cells with another valid label within Chebyshev distance ``band``."""
    if band < 1:
        raise ValueError(f"band must be >= 1 grid cell, got {band}")
    valid = labels != ignore_index
    values = labels.double()[None, None]
    size = 2 * band + 1
    highest = F.max_pool2d(torch.where(valid, values, -1.0), size, 1, band)[0, 0]
    lowest = -F.max_pool2d(torch.where(valid, -values, -math.inf), size, 1, band)[0, 0]
    own = labels.double()
    return valid & ((highest > own) | (lowest < own))


@dataclass
class RegionCounts:
    """Computed and total cells of one mask, per ground-truth class and per region, summed
    over images."""

    num_classes: int
    class_computed: np.ndarray = field(init=False)
    class_cells: np.ndarray = field(init=False)
    region_computed: dict[str, float] = field(init=False)
    region_cells: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.class_computed = np.zeros(self.num_classes)
        self.class_cells = np.zeros(self.num_classes, np.int64)
        self.region_computed = dict.fromkeys(REGIONS, 0.0)
        self.region_cells = dict.fromkeys(REGIONS, 0)

    def add(self, computed: Tensor, labels: Tensor, boundary: Tensor,
            ignore_index: int = IGNORE_INDEX) -> None:
        """One image: ``computed`` (h, w) in [0, 1], its grid's ``labels`` and boundary cells."""
        valid = (labels != ignore_index) & (labels < self.num_classes)
        classes = labels[valid].long().cpu()
        weights = computed[valid].double().cpu()
        self.class_computed += torch.bincount(classes, weights, self.num_classes).numpy()
        self.class_cells += torch.bincount(classes, minlength=self.num_classes).numpy()
        for region, cells in (("boundary", boundary), ("interior", valid & ~boundary)):
            self.region_computed[region] += float(computed[cells].double().sum())
            self.region_cells[region] += int(cells.sum())

    def density(self, region: str) -> float:
        """Density over ``region`` ('boundary' / 'interior'); NaN without cells."""
        cells = self.region_cells[region]
        return self.region_computed[region] / cells if cells else math.nan

    def class_densities(self) -> np.ndarray:
        """(num_classes,) density per class; NaN for classes without cells."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.class_cells > 0,
                            self.class_computed / np.maximum(self.class_cells, 1), np.nan)


@dataclass
class RegionSparsity:
    """Region counts of every sampling layer of one model: backbone block -> (mask1, mask2)
    counts, sampled head conv -> (its mask's counts,)."""

    classes: tuple[str, ...]
    band: int
    blocks: dict[str, tuple[RegionCounts, ...]]
    head: dict[str, tuple[RegionCounts, ...]]
    images: int = 0

    def block_density(self, name: str, region: str) -> float:
        """(d1 + d2) / 2 of block ``name`` over ``region``."""
        return float(np.mean([c.density(region) for c in self.blocks[name]]))

    def density(self, region: str) -> float:
        """Mean over sampling blocks of the block density over ``region``."""
        return float(np.mean([self.block_density(n, region) for n in self.blocks]))

    @property
    def ratio(self) -> float:
        """Boundary density / interior density of the model (NaN if either is missing)."""
        interior = self.density("interior")
        return self.density("boundary") / interior if interior > 0 else math.nan

    def class_densities(self) -> np.ndarray:
        """(num_classes,) mean over sampling blocks of (d1 + d2) / 2 on each class, over the
        masks whose grid has cells of the class (a thin class may vanish on a coarse grid);
        NaN for a class on no grid."""
        per_mask = np.array([c.class_densities() for counts in self.blocks.values()
                             for c in counts]).reshape(len(self.blocks), -1, len(self.classes))
        with warnings.catch_warnings():  # all-NaN columns: classes on no grid stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(np.nanmean(per_mask, axis=1), axis=0)

    def class_shares(self) -> np.ndarray:
        """(num_classes,) share of each class in the labelled cells of the finest mask grid."""
        cells = max((c.class_cells for counts in self.blocks.values() for c in counts),
                    key=lambda a: int(a.sum()))
        return cells / max(int(cells.sum()), 1)

    def summary(self) -> dict[str, Any]:
        """The model's boundary / interior densities and ratio, and per class (present ones)."""
        densities, shares = self.class_densities(), self.class_shares()
        return {
            "boundary": self.density("boundary"),
            "interior": self.density("interior"),
            "boundary_interior_ratio": self.ratio,
            "per_class": {name: {"density": float(d), "share": float(s)}
                          for name, d, s in zip(self.classes, densities, shares) if s > 0},
        }

    def to_dict(self) -> dict[str, Any]:
        def layer(name: str, counts: tuple[RegionCounts, ...], masks: Sequence[str]) -> dict:
            entry: dict[str, Any] = {"name": name}
            for mask, c in zip(masks, counts):
                entry[mask] = {**{r: c.density(r) for r in REGIONS},
                               "per_class": [float(d) for d in c.class_densities()]}
            return entry

        return {
            "band": self.band,
            "images": self.images,
            "classes": list(self.classes),
            **self.summary(),
            "blocks": [layer(n, c, ("d1", "d2")) for n, c in self.blocks.items()],
            "head": [layer(n, c, ("density",)) for n, c in self.head.items()],
        }


class RegionCollector:
    """Adds the masks of each evaluated batch to a :class:`RegionSparsity`: call it with the
    predictions and the dataset's metainfo (``classes``) right after ``model.test_step``, while
    the model still holds that batch's masks (an :data:`~.loading.BatchObserver`).

    Predictions without ``gt_sem_seg`` (detection) are skipped; ``result`` is then None.
    """

    def __init__(self, model: nn.Module, band: int = DEFAULT_BAND,
                 ignore_index: int = IGNORE_INDEX) -> None:
        if band < 1:
            raise ValueError(f"band must be >= 1 grid cell, got {band}")
        self.model = model
        self.band = band
        self.ignore_index = ignore_index
        self._blocks = sampling_blocks(model)
        self._head = sampled_decode_head(model)
        self._sparsity: RegionSparsity | None = None

    @property
    def result(self) -> RegionSparsity | None:
        """The counts so far; None when no image was counted or no block samples."""
        if self._sparsity is None or not self._sparsity.images or not self._blocks:
            return None
        return self._sparsity

    def __call__(self, outputs: Sequence[Any], dataset_meta: Mapping[str, Any]) -> None:
        if self._sparsity is None:
            self._sparsity = self._empty(tuple(dataset_meta.get("classes") or ()))
        for index, sample in enumerate(outputs):
            if "gt_sem_seg" not in sample:
                continue
            self._add_image(index, sample)
            self._sparsity.images += 1

    def _empty(self, classes: tuple[str, ...]) -> RegionSparsity:
        n = len(classes)
        head_convs = self._head[0].sampled_layer_names() if self._head is not None else ()
        return RegionSparsity(classes, self.band,
                              {name: (RegionCounts(n), RegionCounts(n)) for name in self._blocks},
                              {name: (RegionCounts(n),) for name in head_convs})

    def _add_image(self, index: int, sample: Any) -> None:
        assert self._sparsity is not None
        labels = sample.gt_sem_seg.data[0]
        region = image_geometry(sample)[1]
        grids: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}

        def add(counts: RegionCounts, sampler: Any, mask: Tensor) -> None:
            computed = sampler.computed(mask[index, 0]).float()
            h, w = computed.shape
            computed = computed[: max(1, round(h * region[0])), : max(1, round(w * region[1]))]
            shape = (int(computed.shape[0]), int(computed.shape[1]))
            if shape not in grids:
                grid = labels_on_grid(labels.to(computed.device), shape)
                grids[shape] = (grid, boundary_cells(grid, self.band, self.ignore_index))
            counts.add(computed, *grids[shape], self.ignore_index)

        for name, block in self._blocks.items():
            last = block.last_sampling
            if last is None:
                raise RuntimeError(f"block {name!r} has not run a forward pass yet")
            for counts, mask in zip(self._sparsity.blocks[name], (last.mask1, last.mask2)):
                add(counts, block.sampler, mask)
        if self._head is not None and self._head[1].last_sampling is not None:
            sampling = self._head[1]
            for (counts,), mask in zip(self._sparsity.head.values(),
                                       sampling.last_sampling.masks):
                add(counts, sampling.sampler, mask)
