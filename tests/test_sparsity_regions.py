"""Where the model computes: density per ground-truth class and on class boundaries vs
interiors, on constructed labels and masks whose answers are known."""

from __future__ import annotations

import math

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch import nn

from seg_sparse.analysis.sparsity_regions import (
    RegionCollector,
    RegionCounts,
    boundary_cells,
    labels_on_grid,
)
from seg_sparse.sampling import SamplingOutput, SparseBottleneck

CLASSES = ("road", "car", "sky")


def test_grid_cells_take_the_label_at_their_centre():
    labels = torch.arange(64).view(8, 8)
    grid = labels_on_grid(labels, (4, 4))
    assert grid.tolist() == labels[1::2, 1::2].tolist()  # centres of 2x2 cells
    assert labels_on_grid(labels, (8, 8)).equal(labels)


def test_boundary_band_on_two_halves_with_an_ignored_column():
    halves = torch.zeros(6, 8, dtype=torch.long)
    halves[:, 4:] = 1
    boundary = boundary_cells(halves, band=1)
    assert boundary.any(0).nonzero().flatten().tolist() == [3, 4]  # one cell either side
    assert boundary[:, 3].all() and boundary[:, 4].all()
    assert boundary_cells(halves, band=2).any(0).nonzero().flatten().tolist() == [2, 3, 4, 5]
    # an ignored column between the classes: no valid neighbour differs within 1 cell ...
    ignored = halves.clone()
    ignored[:, 4] = 255
    assert not boundary_cells(ignored, band=1).any()
    # ... within 2 cells columns 3 and 5 see each other; ignored cells are never boundary
    wide = boundary_cells(ignored, band=2)
    assert wide.any(0).nonzero().flatten().tolist() == [3, 5] and not wide[:, 4].any()
    with pytest.raises(ValueError, match="band"):
        boundary_cells(halves, band=0)


def test_region_counts_per_class_and_region():
    labels = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 255]])
    boundary = boundary_cells(labels, 1)
    computed = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    counts = RegionCounts(3)
    counts.add(computed, labels, boundary)
    # class 0: 1 of 4 cells computed; class 1: 2 of 3; class 2 has no cells
    densities = counts.class_densities()
    assert densities[:2].tolist() == [0.25, pytest.approx(2 / 3)] and math.isnan(densities[2])
    # boundary: the cells of columns 1 and 2 (the other class in their 3x3 neighbourhood);
    # interior: column 0 and the top right cell (its neighbours are class 1 or ignored)
    assert boundary.tolist() == [[False, True, True, False], [False, True, True, False]]
    assert counts.region_cells == {"boundary": 4, "interior": 3}
    assert counts.density("boundary") == 0.25 and counts.density("interior") == pytest.approx(2 / 3)
    assert math.isnan(RegionCounts(3).density("interior"))  # no cells: undefined


class OneBlock(nn.Module):
    """A 'segmentor' with one sampling block whose masks the test sets by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(SparseBottleneck(16, 4))


def _sample(labels: torch.Tensor, input_shape: tuple[int, int]) -> SegDataSample:
    """A labelled sample whose image filled ``input_shape`` up to padding at the bottom / right
    (the geometry detection batches have; segmentation predictions cover the whole input)."""
    shape = tuple(labels.shape)
    sample = SegDataSample(metainfo=dict(ori_shape=shape, img_shape=shape,
                                         batch_input_shape=input_shape))
    sample.gt_sem_seg = PixelData(data=labels[None])
    return sample


def test_collector_on_known_masks_boundary_twice_the_interior():
    """16x16 image, left half road, right half car; masks on an 8x8 grid (stride 2).

    mask1 computes the two boundary columns (3, 4) only: boundary 1, interior 0; mask2
    computes everything: 1 and 1. The block: boundary (1 + 1) / 2 = 1, interior 0.5, ratio 2.
    Per class: road and car each get 8 of 32 cells from mask1 (0.25) and all from mask2.
    """
    labels = torch.zeros(16, 16, dtype=torch.long)
    labels[:, 8:] = 1
    mask1 = torch.zeros(1, 1, 8, 8)
    mask1[..., 3:5] = 1
    mask2 = torch.ones(1, 1, 8, 8)
    model = OneBlock()
    block = model.backbone[0]
    block.last_sampling = SamplingOutput(mask1, mask2, mask1, mask2)
    collector = RegionCollector(model, band=1)
    collector([_sample(labels, (16, 16))], {"classes": CLASSES})
    regions = collector.result
    assert regions is not None and regions.images == 1
    d1, d2 = regions.blocks["0"]
    assert (d1.density("boundary"), d1.density("interior")) == (1.0, 0.0)
    assert (d2.density("boundary"), d2.density("interior")) == (1.0, 1.0)
    assert regions.density("boundary") == 1.0 and regions.density("interior") == 0.5
    assert regions.ratio == 2.0
    summary = regions.summary()
    assert summary["per_class"] == {
        "road": {"density": pytest.approx(0.625), "share": 0.5},  # (8/32 + 1) / 2
        "car": {"density": pytest.approx(0.625), "share": 0.5}}
    data = regions.to_dict()
    assert data["blocks"][0]["d1"]["boundary"] == 1.0 and data["band"] == 1
    assert data["classes"] == list(CLASSES) and data["boundary_interior_ratio"] == 2.0


def test_collector_cuts_the_padding_and_pools_over_images():
    """Image 0 (16x16) was padded to a 20x16 input: the mask's last 2 rows of 10 cover padding
    and are left out even though they are computed. Image 1 has no boundary at all."""
    left_right = torch.zeros(16, 16, dtype=torch.long)
    left_right[:, 8:] = 1
    mask = torch.zeros(2, 1, 10, 8)
    mask[0, :, 8:] = 1  # padding rows of image 0
    mask[0, :, :8, 3:5] = 1  # boundary columns of image 0
    mask[1, :, :4] = 1  # top half of image 1, all sky
    model = OneBlock()
    model.backbone[0].last_sampling = SamplingOutput(mask, mask, mask, mask)
    sky = torch.full((20, 16), 2, dtype=torch.long)
    collector = RegionCollector(model)
    collector([_sample(left_right, (20, 16)), _sample(sky, (20, 16))], {"classes": CLASSES})
    d1, _ = collector.result.blocks["0"]
    assert d1.region_cells == {"boundary": 16, "interior": 48 + 80}
    assert d1.density("boundary") == 1.0
    assert d1.density("interior") == pytest.approx(32 / 128)  # image 1's computed top half
    assert d1.class_densities()[2] == pytest.approx(32 / 80)


def test_collector_skips_predictions_without_labels():
    model = OneBlock()
    model.backbone[0].last_sampling = SamplingOutput(*[torch.ones(1, 1, 4, 4)] * 4)
    collector = RegionCollector(model)
    collector([SegDataSample()], {"classes": CLASSES})
    assert collector.result is None


def test_region_chart_from_the_json_entry(tmp_path):
    from PIL import Image

    from seg_sparse.visualization import region_density_chart

    labels = torch.zeros(16, 16, dtype=torch.long)
    labels[:, 8:] = 1
    model = OneBlock()
    mask = torch.ones(1, 1, 8, 8)
    model.backbone[0].last_sampling = SamplingOutput(mask, mask, mask, mask)
    collector = RegionCollector(model)
    collector([_sample(labels, (16, 16))], {"classes": CLASSES})
    png = tmp_path / "regions.png"
    region_density_chart({"model a": collector.result.to_dict()}, png)
    with Image.open(png) as image:
        assert image.size[0] >= 1000 and image.size[1] >= 300
    with pytest.raises(ValueError, match="empty"):
        region_density_chart({})
