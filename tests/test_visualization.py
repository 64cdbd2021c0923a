"""Figures: files written at the expected size, panels, colours and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from seg_sparse.sampling import SparseBottleneck
from seg_sparse.visualization import (
    CITYSCAPES_PALETTE,
    collect_block_masks,
    colorize,
    default_blocks,
    mask_overlay_figure,
    overlay_mask,
    resolve_blocks,
    sparsity_bar_chart,
    speed_accuracy_curve,
    stochastic_vs_deterministic_figure,
    use_sampler,
)
from seg_sparse.visualization.style import DPI

H, W = 64, 128


def _scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    prediction = np.zeros((H, W), np.uint8)  # road
    prediction[: H // 2] = 10  # sky
    prediction[H // 2 :, W // 2 :] = 13  # car
    return image, prediction


def _masks(names: list[str]) -> dict:
    rng = np.random.default_rng(1)
    out = {}
    for name in names:
        m1 = (rng.random((H, W)) < 0.7).astype(np.float32)
        m2 = (rng.random((H, W)) < 0.3).astype(np.float32)
        out[name] = (m1, m2, float(m1.mean()), float(m2.mean()))
    return out


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


def _image_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.get_images()]


def test_overlay_keeps_sampled_pixels_bright_and_darkens_the_rest():
    image = np.full((4, 4, 3), 200, np.uint8)
    mask = np.zeros((4, 4))
    mask[:2] = 1
    out = overlay_mask(image, mask)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert out[:2].mean() > 150  # tinted but bright
    assert out[2:].max() <= 200 * 0.25 + 1  # dimmed to a quarter
    with pytest.raises(ValueError, match="upsample masks"):
        overlay_mask(image, np.ones((2, 2)))


def test_colorize_uses_the_cityscapes_palette_and_black_for_ignore():
    pred = np.array([[0, 13], [255, 10]], np.uint8)
    out = colorize(pred, CITYSCAPES_PALETTE)
    assert out[0, 0].tolist() == [128, 64, 128]  # road
    assert out[0, 1].tolist() == [0, 0, 142]  # car
    assert out[1, 0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="palette has 2 colours"):
        colorize(pred, CITYSCAPES_PALETTE[:2])


def test_mask_overlay_figure_has_image_prediction_and_two_masks_per_block(tmp_path):
    image, prediction = _scene()
    blocks = ["layer1.2", "layer2.3", "layer3.5"]
    out = tmp_path / "sub" / "overlay.png"
    fig = mask_overlay_figure(image, prediction, _masks(blocks), CITYSCAPES_PALETTE, out)
    assert out.is_file()
    assert _png_size(out) == (round(fig.get_figwidth() * DPI), round(fig.get_figheight() * DPI))
    panels = _image_axes(fig)
    assert len(panels) == 2 + 2 * len(blocks)
    titles = [ax.get_title() for ax in panels]
    assert titles[:2] == ["input image", "prediction"]
    d1 = _masks(blocks)["layer2.3"][2]
    assert f"layer2.3  mask1 (conv1): {100 * d1:.1f}% sampled" in titles
    # legend lists exactly the predicted classes, largest first
    legend_texts = [t.get_text() for ax in fig.axes if ax.get_legend()
                    for t in ax.get_legend().get_texts()]
    assert legend_texts[:3] == ["sky  50%", "road  25%", "car  25%"]


def test_mask_overlay_figure_rejects_mismatched_inputs(tmp_path):
    image, prediction = _scene()
    with pytest.raises(ValueError, match="prediction has shape"):
        mask_overlay_figure(image, prediction[:10], _masks(["a"]))
    with pytest.raises(ValueError, match="masks is empty"):
        mask_overlay_figure(image, prediction, {})
    with pytest.raises(ValueError, match="must be \\(mask1, mask2, density1, density2\\)"):
        mask_overlay_figure(image, prediction, {"a": (np.ones((H, W)),)})
    with pytest.raises(ValueError, match="PNG"):
        mask_overlay_figure(image, prediction, _masks(["a"]), out_path=tmp_path / "x.jpg")


def test_stochastic_vs_deterministic_figure_has_four_mask_panels(tmp_path):
    image, _ = _scene()
    masks = _masks(["s", "d"])
    out = tmp_path / "svd.png"
    fig = stochastic_vs_deterministic_figure(image, "layer3.5", masks["s"], masks["d"], out)
    assert out.is_file()
    titles = [ax.get_title() for ax in _image_axes(fig)]
    assert len(titles) == 4
    assert sum("stochastic" in t for t in titles) == 2
    assert sum("deterministic" in t for t in titles) == 2
    assert "layer3.5" in fig.get_suptitle()


def test_sparsity_bar_chart_one_panel_per_model_three_bars_per_block(tmp_path):
    blocks = {f"layer1.{i}": (0.2 * i, 0.5, 0.5) for i in range(3)}
    out = tmp_path / "bars.png"
    fig = sparsity_bar_chart({"ours": blocks, "determ": blocks}, out)
    assert out.is_file()
    assert _png_size(out) == (round(fig.get_figwidth() * DPI), round(fig.get_figheight() * DPI))
    panels = [ax for ax in fig.axes if ax.patches]
    assert len(panels) == 2
    assert all(len(ax.patches) == 3 * len(blocks) for ax in panels)
    assert [t.get_text() for t in panels[0].get_xticklabels()] == list(blocks)
    heights = sorted(p.get_height() for p in panels[0].patches)
    assert heights[0] == 0.0 and heights[-1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="three values"):
        sparsity_bar_chart({"ours": {"layer1.0": (0.5, 1.5, 0.5)}})
    with pytest.raises(ValueError, match="empty"):
        sparsity_bar_chart({})


def test_speed_accuracy_curve_one_line_per_family_with_labels(tmp_path):
    points = [
        dict(method_family="ours", label="w=0.1", gflops=30.0, metric=69.5),
        dict(method_family="ours", label="w=0.05", gflops=40.0, metric=70.0),
        dict(method_family="uniform sampling", label="736", gflops=26.0, metric=66.0),
    ]
    out = tmp_path / "curve.png"
    fig = speed_accuracy_curve(points, out)
    assert out.is_file()
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"ours", "uniform sampling"}
    assert list(lines["ours"].get_xdata()) == [30.0, 40.0]  # sorted by GFLOPs
    assert {t.get_text() for t in ax.texts} == {"w=0.1", "w=0.05", "736"}
    with pytest.raises(ValueError, match="no result points"):
        speed_accuracy_curve([])
    with pytest.raises(ValueError, match="lacks keys \\['metric'\\]"):
        speed_accuracy_curve([dict(method_family="a", label="b", gflops=1.0)])
    with pytest.raises(ValueError, match="non-finite"):
        speed_accuracy_curve([dict(method_family="a", label="b", gflops=1.0, metric=float("nan"))])


class _TinyBackbone(torch.nn.Module):
    """Two stages of sparse blocks named like mmseg's ResNet (layer1.0, layer1.1, layer2.0)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer1 = torch.nn.Sequential(SparseBottleneck(16, 4), SparseBottleneck(16, 4))
        down = torch.nn.Conv2d(16, 16, 1, stride=2)
        self.layer2 = torch.nn.Sequential(SparseBottleneck(16, 4, stride=2, downsample=down))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer2(self.layer1(x))


class _TinySegmentor(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = _TinyBackbone()


def test_collect_block_masks_upsamples_with_nearest_and_reports_feature_density():
    model = _TinySegmentor().eval()
    for _, block in model.backbone.named_modules():
        if isinstance(block, SparseBottleneck):
            block.set_generator(torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.backbone(torch.randn(1, 16, 8, 16))
    assert default_blocks(model) == ["layer1.1", "layer2.0"]
    assert resolve_blocks(model, "all") == ["layer1.0", "layer1.1", "layer2.0"]
    with pytest.raises(ValueError, match="available"):
        resolve_blocks(model, ["layer9.0"])
    masks = collect_block_masks(model, (32, 64))
    assert list(masks) == ["layer1.1", "layer2.0"]
    m = masks["layer2.0"]
    assert m.mask1.shape == m.mask2.shape == (32, 64)
    assert set(np.unique(m.mask2)) <= {0.0, 1.0}
    raw = model.backbone.layer2[0].last_sampling.mask2[0, 0]  # (4, 8): each -> 8x8 square
    assert np.array_equal(m.mask2[::8, ::8], raw.numpy())
    assert m.density2 == pytest.approx(float(raw.mean()))


def test_relu_gate_figures_show_and_count_the_computed_positions_not_the_weights():
    model = _TinySegmentor().eval()
    block = model.backbone.layer2[0]
    block.grid_interval = None
    torch.nn.init.normal_(block.mask2.conv.weight, std=0.3)  # gate g from 0 to ~1
    block.mask2.conv.bias.data.fill_(0.0)
    with use_sampler(model, "relu"), torch.no_grad():
        model.backbone(torch.randn(1, 16, 8, 16))
        masks = collect_block_masks(model, (32, 64), ["layer2.0"])
    gate = block.last_sampling.mask2[0, 0]
    assert ((gate > 0) & (gate < 0.5)).any() and (gate == 0).any()  # soft, with zeros
    m = masks["layer2.0"]
    support = (gate > 0).float().numpy()
    assert np.array_equal(m.mask2[::8, ::8], support)  # computed positions at full strength
    assert m.density2 == pytest.approx(float(support.mean()))  # not the mean weight
    assert m.density2 > float(gate.mean())


def test_use_sampler_switches_and_restores():
    model = _TinySegmentor().eval()
    with use_sampler(model, "deterministic"):
        assert {b.sampler.name for b in model.backbone.modules()
                if isinstance(b, SparseBottleneck)} == {"deterministic"}
    assert {b.sampler.name for b in model.backbone.modules()
            if isinstance(b, SparseBottleneck)} == {"stochastic"}
