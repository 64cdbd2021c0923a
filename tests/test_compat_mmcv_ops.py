"""The fallback mmcv.ops: DCN / DCNv2 / point_sample semantics, mmcv state dicts, mmseg import."""

import subprocess
import sys
import textwrap

import mmcv
import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer
from torchvision.ops import deform_conv2d

import seg_sparse  # noqa: F401  (installs the fallback)
from seg_sparse.compat import is_fallback_installed
from seg_sparse.compat.deform_conv import DeformConv2dPack, ModulatedDeformConv2dPack


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _randomise_offsets(module: torch.nn.Module) -> None:
    torch.nn.init.normal_(module.conv_offset.weight, std=0.3)
    torch.nn.init.normal_(module.conv_offset.bias, std=0.5)


def test_fallback_is_installed_as_mmcv_ops():
    assert is_fallback_installed()
    assert sys.modules["mmcv.ops"] is mmcv.ops
    from mmcv.ops import DeformConv2dPack as Imported

    assert Imported is DeformConv2dPack


def test_registry_builds_fallback_dcn_like_mmcv():
    dcn = build_conv_layer(dict(type="DCN", deform_groups=2), 4, 8, 3, padding=1, bias=False)
    with pytest.warns(DeprecationWarning, match="deformable_groups"):  # mmcv's old name
        dcnv2 = build_conv_layer(dict(type="DCNv2", deformable_groups=1), 4, 8, 3, padding=1)
    assert isinstance(dcn, DeformConv2dPack) and dcn.deform_groups == 2
    assert isinstance(dcnv2, ModulatedDeformConv2dPack) and dcnv2.bias is not None


def test_offsets_are_dy_dx_pairs_in_kernel_order_per_deform_group():
    """Deform group 0 (input channels 0-1) gets (dy, dx) = (1, 0) at every kernel point, group 1
    none. Group 0 then samples one row lower: out[i, j] += w[k] * x[i + ky + 1, j + kx] (zero
    outside), an unpadded conv over x padded with no row on top and two at the bottom."""
    layer = DeformConv2dPack(4, 5, 3, padding=1, deform_groups=2)
    x = torch.randn(2, 4, 7, 9)
    offset = torch.zeros(2, 36, 7, 9)
    offset[:, 0:18:2] = 1.0  # group 0's block: even channels are dy
    shifted_part = F.conv2d(F.pad(x[:, :2], (1, 1, 0, 2)), layer.weight[:, :2])
    plain_part = F.conv2d(x[:, 2:], layer.weight[:, 2:], padding=1)
    torch.testing.assert_close(
        layer._deform(x, offset), shifted_part + plain_part, atol=1e-5, rtol=1e-5
    )


def test_dcn_matches_torchvision_values_and_gradients():
    layer = DeformConv2dPack(4, 8, 3, stride=2, padding=2, dilation=2, deform_groups=2)
    _randomise_offsets(layer)
    x = torch.randn(2, 4, 11, 13, requires_grad=True)
    out = layer(x)
    assert out.shape == (2, 8, 6, 7)
    out.square().sum().backward()

    x_ref = x.detach().clone().requires_grad_()
    weight = layer.weight.detach().clone().requires_grad_()
    offset = F.conv2d(x_ref, layer.conv_offset.weight, layer.conv_offset.bias, 2, 2, 2)
    ref = deform_conv2d(x_ref, offset, weight, stride=(2, 2), padding=(2, 2), dilation=(2, 2))
    ref.square().sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(layer.weight.grad, weight.grad)
    assert layer.conv_offset.weight.grad.abs().sum() > 0


def test_dcnv2_matches_torchvision_values_and_gradients():
    layer = ModulatedDeformConv2dPack(4, 6, 3, padding=1, groups=2, deform_groups=2)
    _randomise_offsets(layer)
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    out = layer(x)
    out.square().sum().backward()

    x_ref = x.detach().clone().requires_grad_()
    weight = layer.weight.detach().clone().requires_grad_()
    bias = layer.bias.detach().clone().requires_grad_()
    pred = F.conv2d(x_ref, layer.conv_offset.weight, layer.conv_offset.bias, padding=1)
    # mmcv: the first two thirds are the offset, the last third the mask logits.
    offset, mask = pred[:, :36], torch.sigmoid(pred[:, 36:])
    ref = deform_conv2d(x_ref, offset, weight, bias, padding=(1, 1), mask=mask)
    ref.square().sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(layer.weight.grad, weight.grad)
    torch.testing.assert_close(layer.bias.grad, bias.grad)


def test_zero_initialised_offsets_give_a_plain_convolution():
    layer = DeformConv2dPack(3, 4, 3, padding=1)
    x = torch.randn(1, 3, 6, 6)
    torch.testing.assert_close(layer(x), F.conv2d(x, layer.weight, padding=1))


def test_dcn_refuses_bias_like_mmcv():
    with pytest.raises(ValueError, match="bias=True is not supported"):
        DeformConv2dPack(3, 4, 3, bias=True)


MMCV_STATE_DICT_SCRIPT = textwrap.dedent(
    """
    import sys, types
    import torch
    # Stand-in for the compiled extension: only constructors run, never the kernels.
    ext = types.ModuleType("mmcv._ext")
    def _any(name):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None
    ext.__getattr__ = _any
    sys.modules["mmcv._ext"] = ext
    from mmcv.ops.deform_conv import DeformConv2dPack
    from mmcv.ops.modulated_deform_conv import ModulatedDeformConv2dPack
    torch.save({
        "dcn": DeformConv2dPack(4, 8, 3, padding=1, deform_groups=2).state_dict(),
        "dcnv2": ModulatedDeformConv2dPack(4, 8, 3, padding=1, deform_groups=2).state_dict(),
    }, sys.argv[1])
    """
)


def test_state_dicts_match_mmcv_and_mmcv_weights_load(tmp_path):
    """Builds mmcv 2.1.0's own DCN modules (their python code ships with mmcv-lite) in a
    subprocess and loads their state dicts into the fallback, strictly."""
    path = tmp_path / "mmcv_dcn.pth"
    subprocess.run([sys.executable, "-c", MMCV_STATE_DICT_SCRIPT, str(path)], check=True)
    mmcv_states = torch.load(path, weights_only=True)
    ours = {
        "dcn": DeformConv2dPack(4, 8, 3, padding=1, deform_groups=2),
        "dcnv2": ModulatedDeformConv2dPack(4, 8, 3, padding=1, deform_groups=2),
    }
    for name, module in ours.items():
        expected = {k: v.shape for k, v in mmcv_states[name].items()}
        assert {k: v.shape for k, v in module.state_dict().items()} == expected
        module.load_state_dict(mmcv_states[name], strict=True)
        torch.testing.assert_close(module.weight, mmcv_states[name]["weight"])


def test_point_sample_matches_grid_sample():
    from mmcv.ops import point_sample

    feats = torch.randn(2, 3, 5, 7)
    points = torch.rand(2, 11, 2)
    grid = points * 2 - 1
    expected = F.grid_sample(feats, grid.unsqueeze(2), align_corners=False).squeeze(3)
    torch.testing.assert_close(point_sample(feats, points), expected)
    assert point_sample(feats, points.view(2, 11, 1, 2)).shape == (2, 3, 11, 1)
    # pixel centres: point (x, y) = ((j + .5) / W, (i + .5) / H) reads feats[..., i, j]
    centre = torch.tensor([[[(3 + 0.5) / 7, (1 + 0.5) / 5]]]).expand(2, 1, 2)
    torch.testing.assert_close(point_sample(feats, centre)[..., 0], feats[:, :, 1, 3])


def test_sigmoid_focal_loss_matches_mmseg_reference():
    from mmcv.ops import sigmoid_focal_loss
    from mmseg.models.losses.focal_loss import py_sigmoid_focal_loss

    logits = torch.randn(6, 4)
    target = torch.tensor([0, 3, 1, 4, 2, 0])  # 4 = background
    one_hot = F.one_hot(target, 5)[:, :4].float()
    ours = sigmoid_focal_loss(logits, target, 2.0, 0.25, None, "none")
    reference = py_sigmoid_focal_loss(logits, one_hot, gamma=2.0, alpha=0.25, reduction="none")
    torch.testing.assert_close(ours, reference)


def test_compiled_op_raises_module_not_found_naming_it_when_built():
    from mmcv.ops import PSAMask  # imports: mmseg and mmdet import such names at load time

    with pytest.raises(ModuleNotFoundError, match="PSAMask needs a compiled mmcv"):
        PSAMask("collect", (3, 3))
    with pytest.raises(AttributeError, match="no attribute 'NotAnOp'"):
        mmcv.ops.NotAnOp  # noqa: B018


def test_mmseg_models_and_apis_import_and_dcn_resnet_runs():
    import mmseg.apis  # noqa: F401
    from mmseg.models.backbones import ResNetV1c
    from mmseg.models.decode_heads import cc_head

    # a pure-python op of mmcv-lite (no kernel): served from mmcv-lite's own file
    assert cc_head.CrissCrossAttention.__module__ == "mmcv.ops.cc_attention"
    backbone = ResNetV1c(
        depth=50, base_channels=4, stem_channels=8,
        dcn=dict(type="DCN", deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True),
    )
    assert isinstance(backbone.layer3[0].conv2, DeformConv2dPack)
    outs = backbone(torch.randn(2, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 32, 64, 128]


COMPILED_MMCV_SCRIPT = textwrap.dedent(
    """
    import importlib.machinery, sys, types
    ext = types.ModuleType("mmcv._ext")
    ext.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", None)
    def _any(name):  # stand-in for the compiled kernels; only imports happen here
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None
    ext.__getattr__ = _any
    sys.modules["mmcv._ext"] = ext
    import seg_sparse.compat as compat
    import mmcv.ops
    from mmengine.registry import MODELS
    assert compat.compiled_mmcv_available()
    assert not compat.is_fallback_installed()
    assert mmcv.ops.DeformConv2dPack.__module__ == "mmcv.ops.deform_conv"
    assert MODELS.get("DCN") is mmcv.ops.DeformConv2dPack
    print("no fallback")
    """
)


def test_nothing_is_installed_when_compiled_mmcv_is_present():
    result = subprocess.run(
        [sys.executable, "-c", COMPILED_MMCV_SCRIPT], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no fallback" in result.stdout
