"""Sparse execution at inference: equal to the masked path for the same masks."""

import pytest
import torch
from sampling_reference import drawn_mask, make_block

from seg_sparse.sampling import (
    GaussianInterpolation,
    execution_mode,
    set_execution,
)
from seg_sparse.sampling.predictors import paired_mask_logits
from seg_sparse.sampling.sparse_interpolation import interpolation_matrix


def max_rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def drawn_masks(shape1, shape2, density, grid, seed=0):
    """Stochastic test-time masks of both shapes at probability ``density``, drawn once."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(drawn_mask(shape, density, grid, generator) for shape in (shape1, shape2))


def output_hw(h, w, stride):
    return (h - 1) // stride + 1, (w - 1) // stride + 1


BLOCKS = {  # name: make_block kwargs
    "first-downsample-stride2": dict(stride=2),
    "dilated-dcn": dict(dilation=2, with_dcn=True),
    "dcn-stride2": dict(stride=2, with_dcn=True),
    "plain-3x3": dict(),
    "resnext-groups": dict(stride=2, groups=2, width=8),
    "resnext-groups-dcn": dict(dilation=4, with_dcn=True, groups=4, width=8),
}
#: name: (sampling probability, grid interval); 0.9 takes auto's dense-conv2 branch
DENSITIES = {"zero": (0.0, None), "grid-only": (0.0, 3), "0.3": (0.3, 3), "0.9": (0.9, 3),
             "1.0": (1.0, 3)}


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("density", list(DENSITIES))
@pytest.mark.parametrize("kind", list(BLOCKS))
@pytest.mark.parametrize("execution", ["sparse", "auto"])
def test_sparse_execution_equals_the_masked_path(kind, density, batch, execution):
    block = make_block("stochastic", **BLOCKS[kind]).eval()
    x = torch.randn(batch, 16, 13, 18)
    p, grid = DENSITIES[density]
    h2, w2 = output_hw(13, 18, block.stride)
    block.mask_override = drawn_masks((batch, 1, 13, 18), (batch, 1, h2, w2), p, grid)
    block.execution = "masked"
    expected = block(x)
    block.execution = execution
    got = block(x)
    assert got.shape == expected.shape
    assert max_rel_err(got, expected) < 1e-4
    assert torch.equal(block.last_sampling.mask2, block.mask_override[1])


@pytest.mark.parametrize("with_dcn", [False, True])
def test_soft_masks_weight_the_computed_positions_as_the_masked_path(with_dcn):
    """The relu baseline's test mask is the gate g in [0, 1]: computed where g > 0, weighted."""
    block = make_block("relu", stride=2, with_dcn=with_dcn).eval()
    x = torch.randn(2, 16, 12, 15)
    torch.manual_seed(1)
    m1 = torch.rand(2, 1, 12, 15)
    m2 = torch.rand(2, 1, 6, 8)
    m1[m1 < 0.5] = 0
    m2[m2 < 0.6] = 0
    block.mask_override = (m1, m2)
    with execution_mode(block, "masked"):
        expected = block(x)
    with execution_mode(block, "sparse"):
        got = block(x)
    assert max_rel_err(got, expected) < 1e-4


def test_the_executed_path_samples_the_same_masks_from_the_same_draws():
    block = make_block("stochastic", stride=2, with_dcn=True).eval()
    torch.nn.init.normal_(block.mask1.conv.weight, std=0.1)
    torch.nn.init.normal_(block.mask2.conv.weight, std=0.1)
    block.mask1.conv.bias.data.fill_(-0.5)
    block.mask2.conv.bias.data.fill_(0.5)
    x = torch.randn(2, 16, 14, 14)
    outputs, masks = {}, {}
    for mode in ("masked", "auto"):
        block.execution = mode
        block.set_generator(torch.Generator().manual_seed(3))
        outputs[mode] = block(x)
        masks[mode] = (block.last_sampling.mask1, block.last_sampling.mask2)
    assert torch.equal(masks["masked"][0], masks["auto"][0])
    assert torch.equal(masks["masked"][1], masks["auto"][1])
    assert 0.2 < float(masks["auto"][1].mean()) < 0.9
    assert max_rel_err(outputs["auto"], outputs["masked"]) < 1e-4


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("stride", [1, 2])
def test_paired_mask_logits_equal_the_predictor_convs_values_and_gradients(stride,
                                                                           memory_format):
    block = make_block("stochastic", stride=stride)
    torch.nn.init.normal_(block.mask1.conv.weight)
    torch.nn.init.normal_(block.mask2.conv.weight)
    x = torch.randn(2, 16, 11, 16).contiguous(memory_format=memory_format).requires_grad_()
    z1, z2 = paired_mask_logits((block.mask1, block.mask2), x)
    r1, r2 = block.mask1(x), block.mask2(x)
    torch.testing.assert_close(z1, r1, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(z2, r2, rtol=1e-5, atol=1e-4)
    upstream = (torch.randn_like(r1), torch.randn_like(r2))
    grads = torch.autograd.grad((z1, z2), (x, block.mask2.conv.weight, block.mask1.conv.bias),
                                upstream)
    expected = torch.autograd.grad((r1, r2), (x, block.mask2.conv.weight,
                                              block.mask1.conv.bias), upstream)
    for got, ref in zip(grads, expected):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


def test_folded_weights_follow_loaded_weights():
    block = make_block("dense").eval()
    x = torch.randn(1, 16, 8, 8)
    before = block(x)
    other = make_block("dense", seed=5)
    block.load_state_dict(other.state_dict())
    after = block(x)
    block.execution = "masked"
    assert not torch.allclose(after, before)
    assert max_rel_err(after, block(x)) < 1e-5


def test_training_always_runs_the_masked_path_with_gradients():
    block = make_block("stochastic", with_dcn=True, execution="sparse").train()
    x = torch.randn(2, 16, 9, 9, requires_grad=True)
    block(x).sum().backward()
    assert x.grad is not None and block.mask1.conv.weight.grad is not None


def test_execution_mode_is_validated_and_restored():
    block = make_block("stochastic")
    with pytest.raises(ValueError, match="execution must be one of .*'fast'"):
        set_execution(block, "fast")
    with pytest.raises(ValueError, match="execution must be one of"):
        make_block("stochastic", execution="gpu")
    with execution_mode(block, "sparse"):
        assert block.execution == "sparse"
    assert block.execution == "auto"


@pytest.mark.parametrize("scale", [3.0, 1.2])
@pytest.mark.parametrize("binary", [True, False])
def test_interpolation_plan_equals_the_dense_interpolation(scale, binary):
    """Sparse-matrix interpolation over the computed rows == the separable dense blur, also
    for a learned small bandwidth (wide reach) and soft masks."""
    torch.manual_seed(0)
    interp = GaussianInterpolation(window=7, init_scale=scale)
    feats = torch.randn(2, 5, 10, 13)
    mask = (torch.rand(2, 1, 10, 13) < 0.25).float()
    if not binary:
        mask = mask * torch.rand_like(mask)
    expected = interp(feats, mask)
    flat = mask.reshape(-1)
    index = (flat > 0).nonzero().squeeze(1)
    column = torch.full_like(flat, -1, dtype=torch.long)
    column[index] = torch.arange(index.numel())
    rows = feats.permute(0, 2, 3, 1).reshape(-1, 5)
    matrix = interpolation_matrix(mask, interp.kernel_1d(torch.float64, feats.device), interp.eps,
                              column, binary)
    out = rows * flat[:, None]
    fill = matrix.fill(rows[index])
    out.index_add_(0, matrix.targets, fill if matrix.keep is None else fill * matrix.keep[:, None])
    got = out.view(2, 10, 13, 5).permute(0, 3, 1, 2)
    assert max_rel_err(got, expected) < 1e-5


def test_auto_picks_the_path_per_device_and_density():
    from seg_sparse.sampling.execution import crossover_override, select_executor

    cpu, cuda = torch.device("cpu"), torch.device("cuda")

    def picks(mode, device, training=False, sampling=True, kind="block", grad=False):
        return select_executor(mode, training, sampling, device, kind, grad)

    assert picks("auto", cpu, training=True) is None
    assert picks("masked", cpu) is None
    assert picks("auto", cpu).backend.name == "torch"
    # measured on an H100: sampling blocks are faster masked there; dense blocks fold BN
    assert picks("auto", cuda) is None
    assert picks("auto", cuda, sampling=False) is not None
    assert picks("sparse", cuda) is not None
    assert picks("sparse", cpu).gather_below > 1
    assert 0 < picks("auto", cpu).gather_below <= 1
    # the head's convs have their own crossover (wide inputs: dense convs run faster)
    assert picks("auto", cpu, kind="head").gather_below < picks("auto", cpu).gather_below
    with crossover_override(0.0):
        assert picks("auto", cpu).gather_below == 0.0
    assert picks("auto", cpu).gather_below > 0
    # a call that needs gradients keeps the graph: the masked path
    assert picks("sparse", cpu, grad=True) is None


def test_eval_with_gradients_runs_the_masked_path_and_keeps_the_graph():
    """Attribution in eval mode: 'sparse' / 'auto' give the masked path's output and
    gradients (they used to return a detached output silently)."""
    block = make_block(with_dcn=True, stride=1, dilation=2).eval()
    torch.manual_seed(0)
    x = torch.randn(1, 16, 12, 12, requires_grad=True)
    block.mask_override = drawn_masks((1, 1, 12, 12), (1, 1, 12, 12), 0.3, 3)
    grads = {}
    for mode in ("masked", "sparse", "auto"):
        block.execution = mode
        x.grad = None
        out = block(x)
        assert out.requires_grad
        out.square().sum().backward()
        grads[mode] = x.grad.clone()
    assert torch.equal(grads["sparse"], grads["masked"])
    assert torch.equal(grads["auto"], grads["masked"])
    with torch.no_grad():  # inference: the executor, equal up to rounding
        block.execution = "sparse"
        sparse = block(x)
        block.execution = "masked"
        assert max_rel_err(sparse, block(x)) < 1e-4


def test_tracing_runs_the_masked_path():
    """jit.trace / export / compile cannot follow data-dependent shapes: layers run masked."""
    block = make_block(with_dcn=False, stride=1, dilation=1).eval()
    block.execution = "sparse"
    block.mask_override = drawn_masks((1, 1, 8, 8), (1, 1, 8, 8), 0.3, 3)
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        traced = torch.jit.trace(block, x, check_trace=False)
        block.execution = "masked"
        expected = block(x)
    graph = str(traced.graph)
    assert "nonzero" not in graph and "embedding_bag" not in graph
    assert torch.allclose(traced(x), expected, atol=1e-6)


def test_execution_is_checked_on_assignment():
    block = make_block(with_dcn=False, stride=1, dilation=1)
    with pytest.raises(ValueError, match="execution must be one of"):
        block.execution = "fast"
    assert block.execution == "auto"


@pytest.mark.parametrize("shape", [(2, 3, 9, 14), (1, 2, 70, 65)])
def test_both_blur_forms_agree_in_values_and_gradients(shape, monkeypatch):
    """Small maps blur by banded matrix products, large ones by depthwise convolutions."""
    import seg_sparse.sampling.interpolation as interpolation

    torch.manual_seed(0)
    interp = GaussianInterpolation(window=7, init_scale=1.5)
    x = torch.randn(*shape, requires_grad=True)
    results = []
    for limit in (0, 10**9):  # convolutions, then products
        monkeypatch.setattr(interpolation, "MATMUL_BLUR_MAX_POSITIONS", limit)
        out = interp.blur(x)
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(),
                                    (x, interp.scale))
        results.append((out, *grads))
    for conv_form, matmul_form in zip(*results):
        torch.testing.assert_close(matmul_form, conv_form, rtol=1e-5, atol=1e-5)
