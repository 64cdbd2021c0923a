"""The FLOPs counter: agreement with mmengine on dense models and the sparse formula."""

import pytest
import torch
from mmengine.analysis import FlopAnalyzer, get_model_complexity_info
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from torch import nn

from seg_sparse.flops import count_flops
from seg_sparse.sampling import SparseBottleneck, execution_mode, set_sampling_generator

SHAPE = (32, 64)
DCN = dict(type="DCN", deform_groups=1, fallback_on_stride=False)


def tiny_segmentor(backbone_type="ResNetV1c", dcn=False, width=8, **backbone_kw):
    """Dilated ResNet-50 FCN at base width 8 (the paper's layout, 1/8 of the channels)."""
    init_default_scope("mmseg")
    torch.manual_seed(0)
    backbone = dict(
        type=backbone_type, depth=50, base_channels=width, stem_channels=width,
        dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), contract_dilation=True,
        dcn=DCN if dcn else None, stage_with_dcn=(False, True, True, True) if dcn else (False,) * 4,
        **backbone_kw,
    )
    segmentor = "SparseEncoderDecoder" if backbone_type.startswith("Sparse") else "EncoderDecoder"
    return MODELS.build(dict(
        type=segmentor,
        backbone=backbone,
        decode_head=dict(type="FCNHead", in_channels=32 * width, in_index=3, channels=2 * width,
                         num_convs=2, concat_input=True, num_classes=5),
        auxiliary_head=dict(type="FCNHead", in_channels=16 * width, in_index=2, channels=width,
                            num_convs=1, num_classes=5),
    )).eval()


def mmengine_ops(model, module=""):
    """mmengine's per-operator MACs of the masked computation (the executed inference paths
    are gathers and GEMMs that mmengine's tracer does not attribute to convs), with the DCN
    handle seg_sparse registers as a default."""
    x = torch.zeros(1, 3, *SHAPE)
    analyzer = FlopAnalyzer(model, (x,))
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with execution_mode(model, "masked"):
        return analyzer, analyzer.by_operator(module)


@pytest.mark.parametrize("dcn", [False, True], ids=["plain", "dcn"])
def test_matches_mmengine_on_mmseg_resnetv1c_fcn(dcn):
    model = tiny_segmentor(dcn=dcn)
    report = count_flops(model, SHAPE)
    analyzer, ops = mmengine_ops(model)
    # mmengine also counts BN (and resizing); the convention counts convs only.
    assert set(ops) <= {"conv", "deform_conv2d", "batch_norm"}
    conv_macs = ops["conv"] + ops.get("deform_conv2d", 0)
    assert report.backbone_dense_macs + report.head == conv_macs
    backbone_ops = analyzer.by_operator("backbone")
    assert report.backbone_dense_macs == backbone_ops["conv"] + backbone_ops.get("deform_conv2d", 0)
    assert report.head == analyzer.by_operator("decode_head")["conv"]
    assert report.total_dense == pytest.approx(conv_macs / 1e9)
    if not dcn:  # get_model_complexity_info's total is exactly conv + BN here
        info = get_model_complexity_info(model, inputs=(torch.zeros(1, 3, *SHAPE),),
                                         show_table=False, show_arch=False)
        assert info["flops"] == ops["conv"] + ops["batch_norm"]
    else:  # mmseg's DCN pack predicts its offsets with a conv inside conv2
        assert all(b.role("offset") > 0 for b in report.blocks if b.name >= "layer2")


def test_matches_mmengine_on_dense_sampler_model_with_dcn():
    model = tiny_segmentor("SparseResNetV1c", dcn=True, sampler="dense")
    report = count_flops(model, SHAPE)
    _, ops = mmengine_ops(model)
    assert report.backbone_dense_macs + report.head == ops["conv"] + ops["deform_conv2d"]
    assert not report.is_sparse and report.mask_macs == 0
    # the dense sampler has no sampling machinery, so densities (1, 1) change nothing
    ones = {b.name: (1.0, 1.0) for b in report.blocks}
    assert report.with_densities(ones).backbone_sparse_macs == report.backbone_dense_macs
    with pytest.raises(ValueError, match="layer1.0.*no sampling masks"):
        report.with_densities({**ones, "layer1.0": (0.5, 1.0)})


def complexity_info(model, execution="masked"):
    with execution_mode(model, execution):
        return get_model_complexity_info(model, inputs=(torch.zeros(1, 3, *SHAPE),),
                                         show_table=False, show_arch=False)


def test_get_model_complexity_info_counts_the_dense_twin_like_seg_sparse_flops():
    """The mmengine convention: within 1% (it adds BN, which ours leaves out: 2 per element
    against k * k * C_in per output of a conv, so 1.2% at width 8, 0.6% at the demo's 16)."""
    model = tiny_segmentor("SparseResNetV1c", dcn=True, sampler="dense", width=16)
    report = count_flops(model, SHAPE)
    info = complexity_info(model)
    assert info["flops"] / 1e9 == pytest.approx(report.total_dense, rel=0.01)
    assert info["flops"] / 1e9 > report.total_dense  # BN on top, no DCN skipped
    _, ops = mmengine_ops(model)
    assert ops["conv"] + ops["deform_conv2d"] == report.backbone_dense_macs + report.head
    # a DCN layer's activations are its output elements, as a conv's
    from mmengine.analysis import ActivationAnalyzer

    acts = ActivationAnalyzer(model, (torch.zeros(1, 3, *SHAPE),))
    acts.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with execution_mode(model, "masked"):
        by_op = acts.by_operator()
    positions = (SHAPE[0] // 8) * (SHAPE[1] // 8)
    dcn_outputs = sum(m.conv2.weight.shape[0] for m in model.backbone.modules()
                      if isinstance(m, SparseBottleneck) and m.with_dcn) * positions
    assert by_op["deform_conv2d"] == dcn_outputs


@pytest.mark.parametrize("sampler", ["dense", pytest.param("stochastic", marks=pytest.mark.slow)])
def test_get_model_complexity_info_traces_the_masked_path_on_auto(sampler):
    """The default execution ('auto') runs gathers and GEMMs at inference; traced, every
    sampling layer runs the masked path instead, so mmengine counts the same as on 'masked'
    (and does not crash). Same seed for both: the masked path skips the interpolation of an
    all-ones mask, so the count of a stochastic model follows its draws.

    On a sampling model that count is the masked computation: every conv dense, plus the
    mask predictors and the interpolation (which the executed count weights by the
    densities), so more than the dense count with all masks at density 1."""
    model = tiny_segmentor("SparseResNetV1c", dcn=True, sampler=sampler)
    counts = []
    for execution in ("auto", "masked"):
        set_sampling_generator(model, torch.Generator().manual_seed(0))
        counts.append(complexity_info(model, execution)["flops"])
    assert counts[0] == counts[1]
    report = count_flops(model, SHAPE)
    if sampler == "stochastic":
        ones = report.with_densities({b.name: (1.0, 1.0) for b in report.blocks})
        assert counts[0] / 1e9 > ones.total_sparse > report.total_dense


def test_sparse_block_follows_the_formula():
    """One DCN block, 16 -> 4 -> 16 channels, stride 2, on a 16x16 input (8x8 output)."""
    torch.manual_seed(0)
    downsample = nn.Sequential(nn.Conv2d(16, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
    block = SparseBottleneck(16, 4, stride=2, downsample=downsample, with_dcn=True)
    report = count_flops(nn.Sequential(block), (16, 16), in_channels=16)
    (b,) = report.blocks
    conv1 = 16 * 4 * 16 * 16            # 1x1, at the input resolution
    conv2 = 9 * 4 * 4 * 8 * 8           # 3x3 DCN, stride 2
    conv3 = 4 * 16 * 8 * 8
    offset = 9 * 16 * 18 * 8 * 8        # from the block input, 18 channels
    down = 16 * 16 * 8 * 8
    masks = 9 * 16 * 16 * 16 + 9 * 16 * 8 * 8
    interp1 = 49 * 4 * 16 * 16          # 7x7 over P = 4 channels at conv1's resolution
    interp2 = 49 * 16 * 8 * 8           # 7x7 over 4P = 16 channels at the output
    assert dict(b.macs) == dict(conv1=conv1, conv2=conv2, conv3=conv3, offset=offset,
                                downsample=down, mask1=9 * 16 * 256, mask2=9 * 16 * 64)
    assert (b.interp1, b.interp2) == (interp1, interp2)
    assert report.backbone_dense_macs == conv1 + conv2 + conv3 + offset + down

    for d1, d2 in [(0.5, 0.25), (0.1, 0.9), (0.0, 0.0)]:
        expected = (conv1 * d1 + (conv2 + conv3 + offset) * d2 + down + masks
                    + interp1 * d1 * (1 - d1) + interp2 * d2 * (1 - d2))
        sparse = report.with_densities({"0": (d1, d2)})
        assert sparse.backbone_sparse_macs == pytest.approx(expected)
        assert sparse.backbone_sparse == pytest.approx(expected / 1e9)
    # lowering d2 by 0.1 at d1 fixed saves exactly that share of conv2 + conv3 + offset,
    # minus the change of the interpolation term
    hi = report.with_densities({"0": (0.5, 0.6)}).backbone_sparse_macs
    lo = report.with_densities({"0": (0.5, 0.5)}).backbone_sparse_macs
    assert hi - lo == pytest.approx(0.1 * (conv2 + conv3 + offset) + interp2 * (0.24 - 0.25))


def test_density_one_is_dense_plus_mask_predictors():
    model = tiny_segmentor("SparseResNetV1c", dcn=True, sampler="stochastic")
    dense_twin = tiny_segmentor("SparseResNetV1c", dcn=True, sampler="dense")
    report = count_flops(model, SHAPE)
    assert report.is_sparse and len(report.blocks) == 16
    assert report.backbone_dense_macs == count_flops(dense_twin, SHAPE).backbone_dense_macs
    # mask predictors: a 3x3 conv, block input channels -> 1, at conv1's / the block's stride
    # (input 32x64: stride 4 in layer1 -> 8x16, stride 8 from layer2 on -> 4x8)
    expected_masks = 0
    for name, block in model.backbone.named_modules():
        if isinstance(block, SparseBottleneck):
            h1w1 = 8 * 16 if name.startswith("layer1") or name == "layer2.0" else 4 * 8
            h2w2 = 8 * 16 if name.startswith("layer1") else 4 * 8
            expected_masks += 9 * block.inplanes * (h1w1 + h2w2)
    assert report.mask_macs == expected_masks
    ones = report.with_densities({b.name: (1.0, 1.0) for b in report.blocks})
    assert ones.backbone_sparse_macs == report.backbone_dense_macs + expected_masks
    assert ones.total_sparse == pytest.approx(report.total_dense + expected_masks / 1e9)
    half = report.with_densities({f"backbone.{b.name}": (0.5, 0.5) for b in report.blocks})
    assert half.total_sparse < report.total_dense
    assert half.mean_density() == 0.5


def test_report_output_and_bad_densities():
    model = tiny_segmentor("SparseResNetV1c", sampler="stochastic")
    report = count_flops(model, SHAPE, {f"layer{i}.{j}": (0.5, 0.25)
                                        for i, n in enumerate((3, 4, 6, 3), 1) for j in range(n)})
    data = report.to_dict()
    assert data["input_shape"] == list(SHAPE)
    dense = data["dense"]
    assert dense["total"] == pytest.approx(dense["backbone"] + dense["head"])
    assert data["sparse"]["total"] < data["dense"]["total"]
    assert data["mean_density"] == pytest.approx(0.375)
    assert [b["name"] for b in data["blocks"]][:2] == ["layer1.0", "layer1.1"]
    table = report.format_table()
    assert "layer4.2" in table and "total" in table and "0.250" in table

    with pytest.raises(ValueError, match="unknown block 'layer9.0'"):
        report.with_densities({"layer9.0": (1.0, 1.0)})
    with pytest.raises(ValueError, match="no density given for sparse blocks"):
        report.with_densities({"layer1.0": (1.0, 1.0)})
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        report.with_densities({**report.densities, "layer1.0": (1.5, 0.0)})
    with pytest.raises(ValueError, match="input shape must be positive"):
        count_flops(model, (0, 64))
    assert model.training is False


@pytest.mark.slow
def test_the_complexity_info_lines_of_the_docs_run_and_agree(monkeypatch):
    """docs/analysis.md's snippet, on the demo's dense twin: within 1% of count_flops."""
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    section = (repo / "docs/analysis.md").read_text().split("### mmengine's FLOP counter")[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(repo)
    namespace: dict = {}
    exec(compile(code, "docs/analysis.md", "exec"), namespace)  # noqa: S102 - our own docs
    report = count_flops(namespace["model"], (128, 256))
    assert namespace["info"]["flops"] / 1e9 == pytest.approx(report.total_dense, rel=0.01)
    assert round(report.total_dense, 3) == 1.390  # the figure the docs quote
