"""SparseBottleneck and the model-level helpers (loss, densities, temperature, generator)."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from sampling_reference import make_block
from torch import nn
from torchvision.ops import deform_conv2d

from seg_sparse.sampling import (
    GumbelTemperature,
    SparseBottleneck,
    block_densities,
    grid_prior_mask,
    set_sampling_generator,
    set_temperature_iter,
    sparse_blocks,
    sparsity_loss,
)

SAMPLING_KEYS = {
    "mask1.conv.weight", "mask1.conv.bias", "mask2.conv.weight", "mask2.conv.bias",
    "interp1.scale", "interp2.scale", "temperature.value", "temperature.iteration",
}


def set_mask_bias(block, bias1, bias2=None):
    block.mask1.conv.bias.data.fill_(bias1)
    block.mask2.conv.bias.data.fill_(bias1 if bias2 is None else bias2)


def plain_bottleneck(block, x):
    """The same block computed by hand with torch.nn.functional -- no sampling machinery."""
    def bn(mod, t):
        return F.batch_norm(t, mod.running_mean, mod.running_var, mod.weight, mod.bias,
                            False, mod.momentum, mod.eps)

    out = F.relu(bn(block.bn1, F.conv2d(x, block.conv1.weight)))
    if block.with_dcn:
        offset = F.conv2d(x, block.conv2_offset.weight, block.conv2_offset.bias,
                          stride=block.stride, padding=block.dilation, dilation=block.dilation)
        out = deform_conv2d(out, offset, block.conv2.weight, stride=block.stride,
                            padding=block.dilation, dilation=block.dilation)
    else:
        out = F.conv2d(out, block.conv2.weight, stride=block.stride, padding=block.dilation,
                       dilation=block.dilation, groups=block.groups)
    out = F.relu(bn(block.bn2, out))
    out = bn(block.bn3, F.conv2d(out, block.conv3.weight))
    identity = x if block.downsample is None else block.downsample(x)
    return F.relu(out + identity)


# --- dense equivalence ------------------------------------------------------------------------

@pytest.mark.parametrize("stride, dilation, with_dcn, groups",
                         [(1, 1, False, 1), (2, 1, False, 2), (1, 2, True, 1), (2, 1, True, 2)])
def test_dense_block_equals_the_plain_bottleneck(stride, dilation, with_dcn, groups):
    block = make_block("dense", stride, dilation, with_dcn, groups=groups, width=4 * groups,
                       execution="masked")
    block.eval()
    assert not any(hasattr(block, n) for n in ("mask1", "mask2", "interp1", "temperature"))
    x = torch.randn(2, 16, 13, 18)
    out = block(x)
    if with_dcn:  # the block's DCN is seg_sparse.ops' (rounds differently from torchvision's)
        torch.testing.assert_close(out, plain_bottleneck(block, x), rtol=1e-5, atol=1e-5)
    else:
        assert torch.equal(out, plain_bottleneck(block, x))
    block.execution = "auto"  # BN folded, channels-last: equal up to float rounding
    torch.testing.assert_close(block(x), out, rtol=1e-5, atol=1e-5)
    assert torch.equal(block.last_sampling.mask2, torch.ones(2, 1, *out.shape[-2:]))


@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (1, 4)])
@pytest.mark.parametrize("train", [False, True])
def test_dense_block_is_bit_identical_to_mmsegs_bottleneck(stride, dilation, train):
    # seg_sparse (imported above) installs the mmcv compatibility layer mmseg needs
    from mmseg.models.backbones.resnet import Bottleneck

    block = make_block("dense", stride, dilation, execution="masked")
    ref = Bottleneck(16, 4, stride=stride, dilation=dilation, downsample=block.downsample)
    assert set(ref.state_dict()) == set(block.state_dict())
    ref.load_state_dict(block.state_dict())
    block.train(train)
    ref.train(train)
    x = torch.randn(2, 16, 15, 12)
    assert torch.equal(block(x), ref(x))


def test_dense_grouped_block_is_bit_identical_to_mmsegs_resnext_bottleneck():
    from mmseg.models.backbones.resnext import Bottleneck as ResNeXtBottleneck

    torch.manual_seed(0)
    downsample = nn.Sequential(nn.Conv2d(16, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
    ref = ResNeXtBottleneck(16, 4, groups=4, base_width=8, base_channels=4, stride=2,
                            downsample=downsample).eval()
    width = ref.conv1.out_channels
    block = SparseBottleneck(16, 4, stride=2, downsample=downsample, sampler="dense",
                             groups=4, width=width, execution="masked").eval()
    assert width == 32 and block.conv2.groups == 4
    block.load_state_dict(ref.state_dict())
    x = torch.randn(2, 16, 11, 12)
    assert torch.equal(block(x), ref(x))


def test_mmseg_checkpoint_loads_with_only_sampling_parameters_missing():
    dense = make_block("dense", stride=2, with_dcn=True)
    sparse = make_block("stochastic", stride=2, with_dcn=True, seed=1)
    dense_state = {k: v for k, v in dense.state_dict().items() if "conv2_offset" not in k}
    result = sparse.load_state_dict(dense_state, strict=False)
    assert set(result.missing_keys) == SAMPLING_KEYS | {"conv2_offset.weight",
                                                        "conv2_offset.bias"}
    assert not result.unexpected_keys


def test_fresh_sparse_block_in_eval_computes_the_dense_block():
    """Predictors start at z = 3, so deterministic test masks are all ones: no interpolation."""
    dense = make_block("dense", with_dcn=True).eval()
    sparse = make_block("deterministic", with_dcn=True, seed=1).eval()
    sparse.load_state_dict(dense.state_dict(), strict=False)
    x = torch.randn(1, 16, 12, 12)
    assert torch.equal(sparse(x), dense(x))
    assert sparse.last_sampling.mask1.all() and sparse.last_sampling.mask2.all()


def test_block_can_be_deep_copied_after_a_training_step():
    block = make_block("stochastic").train()
    block.set_generator(torch.Generator().manual_seed(0))
    block(torch.randn(1, 16, 8, 8)).sum().backward()
    twin = copy.deepcopy(block)
    assert twin.last_sampling is None and block.last_sampling is not None
    assert torch.equal(twin.mask1.conv.weight, block.mask1.conv.weight)


def test_reset_sampling_parameters_restores_the_initialisation():
    block = make_block("stochastic", with_dcn=True)
    for m in block.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)  # what a framework-wide init_cfg would do
    block.interp1.scale.data.fill_(7.0)
    block.reset_sampling_parameters()
    assert not block.conv2_offset.weight.any() and not block.mask1.conv.weight.any()
    assert block.mask2.conv.bias.item() == 3.0 and block.interp1.scale.item() == 3.0


# --- training: gradients ----------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["stochastic", "deterministic", "relu"])
def test_gradients_reach_mask_predictors_and_bandwidths(sampler):
    block = make_block(sampler, stride=2, with_dcn=True, groups=2, width=8).train()
    set_mask_bias(block, 0.5)
    x = torch.randn(2, 16, 16, 16)
    block(x).pow(2).mean().backward()  # the task loss alone
    for name in ("mask1.conv.weight", "mask2.conv.weight", "interp1.scale", "interp2.scale"):
        grad = block.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert block.last_sampling.mask1.requires_grad


def test_sparsity_loss_gradient_lowers_the_predictor_bias():
    block = make_block("stochastic").train()
    block(torch.randn(1, 16, 8, 8))
    sparsity_loss(sparse_blocks(block), 1.0).backward()
    assert block.mask1.conv.bias.grad > 0 and block.mask2.conv.bias.grad > 0


# --- eval masks -------------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["stochastic", "deterministic"])
def test_eval_masks_are_binary_and_keep_the_grid(sampler):
    block = make_block(sampler, grid_interval=5).eval()
    set_mask_bias(block, -0.5)
    nn.init.normal_(block.mask1.conv.weight, std=0.5)
    nn.init.normal_(block.mask2.conv.weight, std=0.5)
    block(torch.randn(3, 16, 21, 17))
    grid = grid_prior_mask(21, 17, interval=5)
    for mask in (block.last_sampling.mask1, block.last_sampling.mask2):
        assert set(mask.unique().tolist()) == {0.0, 1.0}
        assert (mask[:, 0][:, grid] == 1).all()


def test_grid_prior_is_switchable():
    block = make_block("deterministic", grid_interval=None).eval()
    set_mask_bias(block, -5.0)
    block(torch.randn(1, 16, 12, 12))
    assert not block.last_sampling.mask1.any()
    block.grid_interval = 11
    block(torch.randn(1, 16, 12, 12))
    assert block.last_sampling.mask1.sum() == 4  # (0,0), (0,11), (11,0), (11,11)


def test_stochastic_block_repeats_with_the_same_seed_and_differs_with_another():
    model = nn.Sequential(make_block("stochastic", seed=0), make_block("stochastic", seed=1))
    for block in model:
        set_mask_bias(block, 0.0)
    model.eval()
    x = torch.randn(2, 16, 14, 14)

    def run(seed):
        set_sampling_generator(model, torch.Generator().manual_seed(seed))
        out = model(x)
        return out, [b.last_sampling.mask2.clone() for b in model]

    out_a, masks_a = run(3)
    out_b, masks_b = run(3)
    out_c, masks_c = run(4)
    assert torch.equal(out_a, out_b) and all(map(torch.equal, masks_a, masks_b))
    assert not torch.equal(masks_a[0], masks_c[0]) and not torch.equal(out_a, out_c)


def test_deterministic_block_repeats_always():
    block = make_block("deterministic").eval()
    set_mask_bias(block, 0.0)
    nn.init.normal_(block.mask2.conv.weight, std=0.5)
    x = torch.randn(2, 16, 14, 14)
    outs = []
    for seed in (0, 1):
        block.set_generator(torch.Generator().manual_seed(seed))
        outs.append((block(x), block.last_sampling.mask2.clone()))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert 0 < outs[0][1].mean() < 1


# --- temperature inside blocks ----------------------------------------------------------------

def test_block_temperature_is_saved_and_driven_by_the_iteration():
    model = nn.Sequential(make_block("stochastic"), make_block("dense"), make_block("relu"))
    set_temperature_iter(model, 100)
    temps = [m for m in model.modules() if isinstance(m, GumbelTemperature)]
    assert len(temps) == 2
    assert all(t.value.item() == torch.tensor(0.01).item() for t in temps)
    state = model.state_dict()
    assert state["0.temperature.iteration"].item() == 100

    resumed = nn.Sequential(make_block("stochastic"), make_block("dense"), make_block("relu"))
    resumed.load_state_dict(state)
    assert resumed[0].temperature.value.item() == torch.tensor(0.01).item()
    set_temperature_iter(resumed, 50)
    assert resumed[2].temperature.value.item() == pytest.approx(0.1, rel=1e-5)


# --- loss and densities -----------------------------------------------------------------------

def test_sparsity_loss_matches_the_formula():
    blocks = [make_block("stochastic", seed=0), make_block("relu", stride=2, seed=1),
              make_block("dense", seed=2)]
    set_mask_bias(blocks[0], 1.0, -2.0)
    set_mask_bias(blocks[1], 0.5, 2.0)
    model = nn.Sequential(*blocks).train()
    model(torch.randn(2, 16, 10, 10))

    def sig(z):
        return 1 / (1 + math.exp(-z))

    def relu_gate(z):
        return 1 - math.exp(-max(z, 0.0))

    expected = 0.2 * ((0.25 * sig(1.0) + 0.75 * sig(-2.0))
                      + (0.25 * relu_gate(0.5) + 0.75 * relu_gate(2.0))) / 2
    loss = sparsity_loss(sparse_blocks(model), 0.2)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert sparsity_loss(blocks, 0.2).item() == pytest.approx(expected, rel=1e-6)
    assert sparsity_loss(sparse_blocks(blocks[2]), 0.2).item() == 0.0


def test_block_densities_are_per_image_fractions_of_the_last_masks():
    model = nn.Sequential(make_block("deterministic", grid_interval=None),
                          make_block("dense")).eval()
    block = model[0]
    block.mask2.conv.bias.data.fill_(0.0)
    block.mask2.conv.weight.data.zero_()
    block.mask2.conv.weight.data[0, 0, 1, 1] = 1.0  # z2 = x[:, 0]: sampled where x[:, 0] >= 0
    x = torch.randn(3, 16, 9, 11)
    model(x)
    dens = block_densities(sparse_blocks(model))
    assert list(dens) == ["0", "1"]
    d1, d2 = dens["0"]
    assert d1.shape == d2.shape == (3,)
    torch.testing.assert_close(d1, torch.ones(3))
    torch.testing.assert_close(d2, (x[:, 0] >= 0).float().mean((1, 2)))
    assert torch.equal(dens["1"][0], torch.ones(3))


def test_block_rejects_bad_settings():
    with pytest.raises(ValueError, match="'bernoulli'"):
        SparseBottleneck(16, 4, sampler="bernoulli")
    with pytest.raises(ValueError, match="grid_interval.*-1"):
        SparseBottleneck(16, 4, grid_interval=-1)
    with pytest.raises(ValueError, match="window.*4"):
        SparseBottleneck(16, 4, interp_window=4)


def test_helpers_name_a_block_that_has_not_run():
    model = nn.Sequential(make_block("stochastic"))
    with pytest.raises(RuntimeError, match="'0'.*forward"):
        sparsity_loss(sparse_blocks(model), 0.1)
