"""Sparse ResNet backbones: checkpoint compatibility with mmseg's ResNets, dense equivalence."""

from __future__ import annotations

import seg_sparse  # noqa: F401, I001  # isort: skip  (mmcv.ops fallback before mmseg)
import pytest
import torch
from mmengine.logging import MMLogger
from mmseg.models.backbones import ResNetV1c, ResNeXt

from seg_sparse.models import SparseResNetV1c, SparseResNeXt
from seg_sparse.sampling import set_execution, sparse_blocks

SAMPLING_KEYS = {"mask1.conv.weight", "mask1.conv.bias", "mask2.conv.weight", "mask2.conv.bias",
                 "interp1.scale", "interp2.scale", "temperature.value", "temperature.iteration"}
OFFSET_KEYS = {"conv2_offset.weight", "conv2_offset.bias"}
# The paper's dilated layout at 1/8 width: every mmseg-specific stage option is exercised.
TINY = dict(depth=50, stem_channels=8, base_channels=8, strides=(1, 2, 1, 1),
            dilations=(1, 1, 2, 4), contract_dilation=True, norm_eval=False)
DCN = dict(dcn=dict(type="DCN", deform_groups=1, fallback_on_stride=False),
           stage_with_dcn=(False, True, True, True))


@pytest.fixture(autouse=True)
def _quiet_init_logs() -> None:
    MMLogger.get_current_instance().setLevel("WARNING")


def _block_suffixes(keys: list[str]) -> set[str]:
    """'layer3.2.mask1.conv.weight' -> 'mask1.conv.weight' (drops the block's name)."""
    assert all(k.startswith("layer") for k in keys), keys
    return {k.split(".", 2)[2] for k in keys}


def _randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters, so equality checks mean something."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


@pytest.mark.parametrize("with_dcn", [False, True])
def test_resnetv1c_state_dict_loads_with_only_sampling_and_offset_params_missing(
        with_dcn: bool) -> None:
    extra = DCN if with_dcn else {}
    torch.manual_seed(0)
    reference = ResNetV1c(**TINY, **extra)
    sparse = SparseResNetV1c(**TINY, **extra)

    result = sparse.load_state_dict(reference.state_dict(), strict=False)

    expected_missing = SAMPLING_KEYS | (OFFSET_KEYS if with_dcn else set())
    assert _block_suffixes(result.missing_keys) == expected_missing
    # mmseg's DCN pack predicts offsets from conv1's output, ours from the block input: its
    # offset conv has another input width and cannot be reused.
    expected_unexpected = {"conv2.conv_offset.weight", "conv2.conv_offset.bias"} if with_dcn \
        else set()
    assert (_block_suffixes(result.unexpected_keys) if result.unexpected_keys else set()) \
        == expected_unexpected
    loaded = sparse.state_dict()
    for key, value in reference.state_dict().items():
        if key in loaded:
            assert torch.equal(loaded[key], value), key
    assert len(list(sparse_blocks(sparse))) == 3 + 4 + 6 + 3


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_dense_sampler_output_equals_mmseg_resnetv1c_with_shared_weights(mode: str) -> None:
    torch.manual_seed(0)
    reference = ResNetV1c(**TINY)
    reference.init_weights()
    _randomize_bn(reference)
    dense = SparseResNetV1c(sampler="dense", execution="masked", **TINY)
    dense.load_state_dict(reference.state_dict(), strict=True)
    getattr(reference, mode)()
    getattr(dense, mode)()
    x = torch.randn(2, 3, 48, 80)

    with torch.no_grad():
        expected, got = reference(x), dense(x)

    assert [o.shape for o in got] == [o.shape for o in expected]
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
    if mode == "eval":  # the default inference path folds BN: equal up to float rounding
        set_execution(dense, "auto")
        with torch.no_grad():
            for e, g in zip(expected, dense(x)):
                torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5 * float(e.abs().max()))


def test_resnext_variant_loads_mmseg_resnext_and_matches_it_when_dense() -> None:
    arch = dict(depth=50, groups=4, base_width=4, stem_channels=16, base_channels=16)
    torch.manual_seed(0)
    reference = ResNeXt(**arch)
    _randomize_bn(reference)
    dense = SparseResNeXt(sampler="dense", execution="masked", **arch)
    dense.load_state_dict(reference.state_dict(), strict=True)
    sparse = SparseResNeXt(sampler="stochastic", **arch)
    result = sparse.load_state_dict(reference.state_dict(), strict=False)
    reference.eval()
    dense.eval()
    x = torch.randn(1, 3, 64, 64)

    with torch.no_grad():
        for e, g in zip(reference(x), dense(x)):
            torch.testing.assert_close(g, e, rtol=0, atol=0)
    assert _block_suffixes(result.missing_keys) == SAMPLING_KEYS
    assert not result.unexpected_keys
    assert dense.layer1[0].conv2.groups == 4


def test_init_weights_keeps_the_sampling_init_that_makes_training_start_dense() -> None:
    sparse = SparseResNetV1c(**TINY, **DCN)
    sparse.init_weights()  # mmseg's Kaiming init re-initialises every nn.Conv2d ...

    for _, block in sparse_blocks(sparse):  # ... but the new layers get their own init back
        for predictor in (block.mask1, block.mask2):
            assert torch.count_nonzero(predictor.conv.weight) == 0
            assert torch.all(predictor.conv.bias == 3.0)
        if block.with_dcn:
            assert torch.count_nonzero(block.conv2_offset.weight) == 0
        assert torch.count_nonzero(block.bn3.weight) == 0  # zero_init_residual, as mmseg
    assert torch.count_nonzero(sparse.layer1[0].conv1.weight) > 0


def test_pretrained_init_cfg_loads_a_resnetv1c_checkpoint(tmp_path) -> None:
    torch.manual_seed(0)
    reference = ResNetV1c(**TINY)
    reference.init_weights()
    _randomize_bn(reference)
    path = tmp_path / "resnetv1c.pth"
    torch.save({"state_dict": reference.state_dict()}, path)
    sparse = SparseResNetV1c(**TINY, init_cfg=dict(type="Pretrained", checkpoint=str(path)))

    sparse.init_weights()

    loaded = sparse.state_dict()
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded[key], value), key
    assert torch.all(sparse.layer2[1].mask2.conv.bias == 3.0)


@pytest.mark.parametrize("bad, message", [
    (dict(dcn=dict(type="DCNv2", deform_groups=1), stage_with_dcn=(False, True, True, True)),
     "dcn"),
    (dict(dcn=dict(type="DCN", deform_groups=2), stage_with_dcn=(False, True, True, True)),
     "deform_groups"),
    (dict(style="caffe"), "style"),
    (dict(with_cp=True), "with_cp"),
    (dict(sampler="gumbel"), "gumbel"),
])
def test_unsupported_options_are_refused_by_name(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SparseResNetV1c(**{**TINY, **bad})


def test_basic_block_depths_are_refused() -> None:
    with pytest.raises(ValueError, match="depth=18"):
        SparseResNetV1c(depth=18)
