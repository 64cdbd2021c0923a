"""SparseFCNHead: sampling in the FCN decode head, masked and executed, loss, densities, FLOPs."""

from __future__ import annotations

import seg_sparse  # noqa: F401, I001  # isort: skip  (mmcv.ops fallback before mmseg)
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from sampling_reference import drawn_mask, randomize_bn
from test_models_segmentor import H, W, samples
from torch import nn

from seg_sparse.apis import ConfigValueError, check_config_values
from seg_sparse.flops import count_flops
from seg_sparse.sampling import (
    HeadSampling,
    execution_mode,
    set_sampling_generator,
    sparse_blocks,
)

CH, CLASSES = 12, 5
#: name: SparseFCNHead kwargs (in_channels CH unless given)
LAYOUTS = {
    "two-convs-concat": dict(num_convs=2, concat_input=True),
    "one-conv": dict(num_convs=1, concat_input=False),
    "concat-only": dict(num_convs=0, concat_input=True, in_channels=8),
    "dilated": dict(num_convs=2, concat_input=True, dilation=2),
    "1x1-convs": dict(num_convs=2, concat_input=False, kernel_size=1),
}
#: name: (sampling probability, grid interval); 0.9 takes auto's full-map branch on CPU
DENSITIES = {"zero": (0.0, None), "grid-only": (0.0, 3), "0.3": (0.3, 3), "0.9": (0.9, 3),
             "1.0": (1.0, 3)}


def make_head(sampler: str = "stochastic", seed: int = 0, **kwargs) -> nn.Module:
    """A tiny SparseFCNHead (BN) with random BN statistics, classifier and mask predictors."""
    init_default_scope("mmseg")
    torch.manual_seed(seed)
    cfg = dict(type="SparseFCNHead", in_channels=CH, channels=8, num_classes=CLASSES,
               norm_cfg=dict(type="BN"), sampling=dict(sampler=sampler, max_iters=100))
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    randomize_bn(head)
    nn.init.normal_(head.conv_seg.weight)
    nn.init.normal_(head.conv_seg.bias)
    if not head.sampling.is_dense:
        for predictor in head.sampling.masks:
            nn.init.normal_(predictor.conv.weight, std=0.3)
            nn.init.zeros_(predictor.conv.bias)
    return head.eval()


def drawn_masks(n: int, shape: tuple[int, ...], density: float, grid: int | None,
                seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``n`` stochastic test-time masks at probability ``density``, grid prior applied."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(drawn_mask(shape, density, grid, generator) for _ in range(n))


def max_rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("density", list(DENSITIES))
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("execution", ["sparse", "auto"])
def test_executed_head_equals_the_masked_head(layout, density, batch, execution):
    head = make_head(**LAYOUTS[layout])
    x = torch.randn(batch, head.in_channels, 11, 14)
    p, grid = DENSITIES[density]
    masks = drawn_masks(head.sampling.num_layers, (batch, 1, 11, 14), p, grid)
    head.sampling.mask_override = masks
    with execution_mode(head, "masked"):
        expected = head([x])
    with execution_mode(head, execution):
        got = head([x])
    assert got.shape == expected.shape == (batch, CLASSES, 11, 14)
    assert max_rel_err(got, expected) < 1e-4
    assert all(torch.equal(a, b) for a, b in zip(head.sampling.last_sampling.masks, masks))


def test_soft_relu_masks_weight_the_computed_positions_as_the_masked_path():
    head = make_head("relu", num_convs=2, concat_input=True)
    x = torch.randn(2, CH, 9, 13)
    generator = torch.Generator().manual_seed(1)
    soft = tuple((torch.rand(2, 1, 9, 13, generator=generator) * 2 - 0.8).clamp(0, 1)
                 for _ in range(3))  # zeros, ones and weights in between
    head.sampling.mask_override = soft
    with execution_mode(head, "masked"):
        expected = head([x])
    with execution_mode(head, "sparse"):
        got = head([x])
    assert max_rel_err(got, expected) < 1e-4


def test_both_paths_draw_the_same_masks_from_the_same_generator():
    head = make_head(num_convs=2, concat_input=True)
    x = torch.randn(2, CH, 10, 12)
    outputs, masks = [], []
    for mode in ("masked", "sparse"):
        set_sampling_generator(head, torch.Generator().manual_seed(5))
        with execution_mode(head, mode):
            outputs.append(head([x]))
        masks.append(head.sampling.last_sampling.masks)
    assert all(torch.equal(a, b) for a, b in zip(*masks))
    assert 0.0 < float(torch.stack([m.mean() for m in masks[0]]).mean()) < 1.0
    assert max_rel_err(outputs[1], outputs[0]) < 1e-4


@pytest.mark.parametrize("execution", ["masked", "auto"])
def test_dense_sampler_is_mmsegs_fcn_head(execution):
    """sampler='dense': no sampling layers; FCNHead's output from FCNHead's state dict."""
    sparse = make_head("dense", num_convs=2, concat_input=True)
    assert not [k for k in sparse.state_dict() if k.startswith("sampling.")]
    plain = MODELS.build(dict(type="FCNHead", in_channels=CH, channels=8, num_classes=CLASSES,
                              num_convs=2, concat_input=True, norm_cfg=dict(type="BN")))
    plain.load_state_dict(sparse.state_dict())
    x = torch.randn(2, CH, 9, 11)
    with execution_mode(sparse, execution):
        got = sparse([x])
    assert max_rel_err(got, plain.eval()([x])) < 1e-5


def test_fcn_head_checkpoints_load_with_only_the_sampling_layers_new():
    sparse = make_head(num_convs=2, concat_input=True)
    plain = MODELS.build(dict(type="FCNHead", in_channels=CH, channels=8, num_classes=CLASSES,
                              num_convs=2, concat_input=True, norm_cfg=dict(type="BN")))
    result = sparse.load_state_dict(plain.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(k.startswith("sampling.") for k in result.missing_keys)
    # one predictor and one interpolation per sampled conv, one temperature
    assert sorted(k for k in result.missing_keys if k.endswith("conv.weight")) == [
        f"sampling.masks.{i}.conv.weight" for i in range(3)]


def test_training_interpolates_every_conv_and_keeps_gradients():
    head = make_head(num_convs=2, concat_input=True).train()
    x = torch.randn(2, CH, 8, 8)
    logits = head([x])
    out = head.sampling.last_sampling
    assert len(out.probs) == len(out.masks) == 3
    assert all(bool(((m > 0) & (m < 1)).float().mean() > 0.9) for m in out.masks)  # soft
    (logits.sum() + head.sampling.sparsity_term()).backward()
    for predictor in head.sampling.masks:
        assert predictor.conv.weight.grad is not None
        assert float(predictor.conv.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_convs=0, concat_input=False, in_channels=8), "no conv to sample"),
    (dict(act_cfg=dict(type="GELU")), "act_cfg"),
    (dict(sampling=dict(sampler="nope")), "sampler must be one of .*'nope'"),
    (dict(sampling=dict(loss_weight=-1.0)), "loss_weight must be >= 0"),
    (dict(sampling=dict(execution="fast")), "execution must be one of"),
])
def test_bad_head_options_are_refused(kwargs, message):
    init_default_scope("mmseg")
    cfg = dict(type="SparseFCNHead", in_channels=CH, channels=8, num_classes=CLASSES)
    cfg.update(kwargs)
    with pytest.raises(ValueError, match=message):
        MODELS.build(cfg)


def test_config_values_of_the_head_sampling_are_checked():
    cfg = Config(dict(model=dict(decode_head=dict(type="SparseFCNHead",
                                                  sampling=dict(sampler="foo")))))
    with pytest.raises(ConfigValueError, match="model.decode_head.sampling.sampler='foo'"):
        check_config_values(cfg)
    cfg = Config(dict(model=dict(decode_head=dict(sampling=dict(t0=0.01, t_final=0.1)))))
    with pytest.raises(ConfigValueError, match="model.decode_head.sampling.t0"):
        check_config_values(cfg)


# -- in a segmentor ----------------------------------------------------------------------------


def segmentor(weight: float = 1.0, loss_weight: float = 1.0) -> nn.Module:
    """Dilated ResNetV1c-50 at 1/16 width with a sampled FCN head (one conv + concat)."""
    init_default_scope("mmseg")
    torch.manual_seed(0)
    bn = dict(type="BN", requires_grad=True)
    cfg = dict(
        type="SparseEncoderDecoder", sparse_loss_weight=weight,
        data_preprocessor=dict(type="SegDataPreProcessor", mean=[0, 0, 0], std=[1, 1, 1]),
        backbone=dict(type="SparseResNetV1c", depth=50, stem_channels=8, base_channels=4,
                      strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), contract_dilation=True,
                      norm_cfg=bn),
        decode_head=dict(type="SparseFCNHead", in_channels=128, in_index=3, channels=16,
                         num_convs=1, concat_input=True, num_classes=19, norm_cfg=bn,
                         sampling=dict(loss_weight=loss_weight)),
        train_cfg=dict(), test_cfg=dict(mode="whole"))
    MMLogger.get_current_instance().setLevel("WARNING")
    model = MODELS.build(ConfigDict(cfg))
    model.init_weights()
    varied_masks(model)
    return model


def varied_masks(model: nn.Module) -> None:
    """Random mask predictors (bias 0) in the backbone and the head: masks that vary over the
    image."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        predictors = [p for _, b in sparse_blocks(model.backbone) for p in (b.mask1, b.mask2)]
        for predictor in [*predictors, *model.decode_head.sampling.masks]:
            predictor.conv.weight.copy_(torch.randn(predictor.conv.weight.shape,
                                                    generator=generator) * 0.3)
            predictor.conv.bias.zero_()


def test_loss_sparse_adds_the_heads_cost_weighted_term():
    model = segmentor(weight=0.5, loss_weight=2.0).train()
    losses = model.loss(torch.randn(2, 3, H, W), samples(2))
    sampling: HeadSampling = model.decode_head.sampling
    # shares: conv 9*128*16 and conv_cat 9*(128+16)*16 plus the classifier 16*19
    costs = [9 * 128 * 16, 9 * 144 * 16 + 16 * 19]
    assert sampling.shares == pytest.approx([c / sum(costs) for c in costs])
    blocks = [b.last_sampling for _, b in sparse_blocks(model.backbone)]
    backbone = torch.stack([0.25 * s.prob1.mean() + 0.75 * s.prob2.mean() for s in blocks]).mean()
    probs = sampling.last_sampling.probs
    head = sum(c / sum(costs) * p.mean() for c, p in zip(costs, probs))
    assert float(losses["loss_sparse"]) == pytest.approx(float(0.5 * (backbone + 2.0 * head)))
    assert 0.0 < float(losses["density_head"]) < 1.0
    losses["loss_sparse"].backward()
    assert float(sampling.masks[1].conv.weight.grad.abs().sum()) > 0


def test_predict_attaches_the_head_densities_of_its_masks():
    model = segmentor().eval()
    set_sampling_generator(model, torch.Generator().manual_seed(0))
    results = model.predict(torch.randn(2, 3, H, W), samples(2))
    masks = model.decode_head.sampling.last_sampling.masks
    for i, result in enumerate(results):
        densities = result.metainfo["head_sampling_densities"]
        assert list(densities) == ["convs.0", "conv_cat"]
        expected = [float((m[i] > 0).float().mean()) for m in masks]
        assert list(densities.values()) == pytest.approx(expected)
        assert all(0.0 < d < 1.0 for d in densities.values())


def test_head_flops_follow_the_formula():
    model = segmentor().eval()
    report = count_flops(model, (H, W))
    h, w = H // 8, W // 8
    conv, cat, cls = 9 * 128 * 16 * h * w, 9 * 144 * 16 * h * w, 16 * 19 * h * w
    masks = (9 * 128 * h * w, 9 * 144 * h * w)
    interps = (49 * 16 * h * w, 49 * 19 * h * w)  # conv's output; the logits for conv_cat
    assert report.head == conv + cat + cls  # dense: what the dense head costs
    assert [(x.name, x.macs, x.mask_macs, x.interp) for x in report.head_layers] == [
        ("convs.0", conv, masks[0], interps[0]), ("conv_cat", cat + cls, masks[1], interps[1])]
    for d0, d1 in [(1.0, 1.0), (0.5, 0.25), (0.0, 0.1)]:
        executed = report.with_densities(None, {"convs.0": d0, "conv_cat": d1})
        expected = (conv * d0 + masks[0] + interps[0] * d0 * (1 - d0)
                    + (cat + cls) * d1 + masks[1] + interps[1] * d1 * (1 - d1))
        assert executed.head_sparse_macs == pytest.approx(expected)
        assert executed.total_sparse_macs == pytest.approx(report.backbone_dense_macs + expected)
        table = executed.format_table()
        assert "head conv_cat" in table and "mean head density" in table
    with pytest.raises(ValueError, match="unknown head conv 'convs.1'"):
        report.with_densities(None, {"convs.1": 0.5, "conv_cat": 0.5})
    with pytest.raises(ValueError, match="no density given for sampled head convs"):
        report.with_densities(None, {"conv_cat": 0.5})


def test_the_sparse_head_configs_build_the_head_on_the_paper_backbone():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    configs = sorted(repo.glob("configs/sparse_fcn/sparse-fcn-sparsehead_*.py"))
    assert [c.name.rsplit("_", 1)[1] for c in configs] == ["w0.05.py", "w0.1.py", "w0.2.py",
                                                          "w0.3.py"]
    for path in configs:
        cfg = Config.fromfile(path)
        check_config_values(cfg)
        head = cfg.model.decode_head
        assert head.type == "SparseFCNHead" and head.sampling.sampler == "stochastic"
        assert cfg.model.backbone.sampler == "stochastic"
    cpu = Config.fromfile(repo / "configs/cpu/"
                          "sparse-fcn-sparsehead_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256_w0.1.py")
    init_default_scope("mmseg")
    head = MODELS.build(cpu.model.decode_head)
    assert head.sampled_layer_names() == ["convs.0", "convs.1", "conv_cat"]


def test_metric_reports_the_executed_head_and_its_densities():
    from mmseg.registry import METRICS

    from seg_sparse.evaluation.sparse_metric import (
        mean_densities,
        mean_head_densities,
        sampling_record,
    )

    model = segmentor().eval()
    set_sampling_generator(model, torch.Generator().manual_seed(0))
    results = [r.to_dict() for r in model.predict(torch.randn(2, 3, H, W), samples(2))]
    metric = METRICS.build(dict(type="SparseIoUMetric", iou_metrics=["mIoU"]))
    metric.dataset_meta = dict(classes=tuple(str(i) for i in range(19)))
    metric.set_flops_model(model)
    metric.process({}, results)
    metrics = metric.evaluate(2)
    records = [sampling_record(r) for r in results]
    expected = count_flops(model, (H, W), mean_densities(records),
                           head_densities=mean_head_densities(records))
    assert metrics["gflops_head"] == pytest.approx(expected.head_gflops)
    assert metrics["gflops_head_sparse"] == pytest.approx(expected.head_sparse)
    assert metrics["gflops_head_sparse"] < metrics["gflops_head"]
    assert metrics["gflops_total_sparse"] == pytest.approx(expected.total_sparse)
    densities = metrics["head_sampling_densities"]
    assert list(densities) == ["convs.0", "conv_cat"]
    assert metrics["head_density_mean"] == pytest.approx(sum(densities.values()) / 2, abs=1e-4)


def test_head_masks_are_collected_drawn_and_charted(tmp_path):
    import numpy as np

    from seg_sparse.visualization import (
        collect_head_masks,
        mask_overlay_figure,
        sparsity_bar_chart,
    )

    model = segmentor().eval()
    set_sampling_generator(model, torch.Generator().manual_seed(0))
    model.predict(torch.randn(1, 3, H, W), samples(1))
    head_masks = collect_head_masks(model, (H, W))
    assert list(head_masks) == ["convs.0", "conv_cat"]
    for entry, mask in zip(head_masks.values(), model.decode_head.sampling.last_sampling.masks):
        assert entry.mask.shape == (H, W)
        assert entry.density == pytest.approx(float(mask.mean()))
        assert entry.mask.mean() == pytest.approx(entry.density)  # 8x nearest upsampling
    image = np.zeros((H, W, 3), np.uint8)
    figure = tmp_path / "masks.png"
    mask_overlay_figure(image, np.zeros((H, W), np.int64), {}, out_path=figure,
                        head_masks=head_masks)
    chart = tmp_path / "sparsity.png"
    sparsity_bar_chart({"m": {"layer1.0": (0.5, 0.4, 0.4)}}, chart,
                       head={"m": {n: e.density for n, e in head_masks.items()}})
    assert figure.stat().st_size > 1000 and chart.stat().st_size > 1000


def test_bench_gives_the_head_masks_and_counts_it_in_the_segmentor_rows(tmp_path):
    import json
    from pathlib import Path

    from seg_sparse.cli.main import main

    cpu = Path(__file__).resolve().parents[1] / "configs/cpu"
    ratios = {}
    for name in ("sparse-fcn", "sparse-fcn-sparsehead"):
        out = tmp_path / f"{name}.json"
        config = cpu / f"{name}_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256_w0.1.py"
        assert main(["bench", str(config), "--inputs", "64x128", "--densities", "0.3",
                     "--parts", "segmentor", "--repeats", "1", "--threads", "1",
                     "--no-memory", "--out-json", str(out)]) == 0
        (row,) = json.loads(out.read_text())
        assert row["dense_ms"] > 0 and row["sparse_ms"] > 0
        ratios[name] = row["flops_ratio"]
    # the dense head is about a quarter of this network's GFLOPs: sampling it at 0.3 cuts the
    # whole segmentor's executed share well below the backbone-only model's
    assert ratios["sparse-fcn-sparsehead"] < 0.75 * ratios["sparse-fcn"]
