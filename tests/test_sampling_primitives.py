"""Sampling primitives: samplers, temperature schedule, grid prior, interpolation."""

import math

import pytest
import torch
from sampling_reference import interp_reference

from seg_sparse.sampling import (
    GaussianInterpolation,
    GumbelTemperature,
    MaskPredictor,
    build_sampler,
    grid_prior_mask,
)


def const_logits(p: float, size: int = 200) -> torch.Tensor:
    return torch.full((1, 1, size, size), math.log(p / (1 - p)))


# --- mask predictor ---------------------------------------------------------------------------

def test_mask_predictor_starts_at_p095_and_matches_strided_conv_shape():
    pred = MaskPredictor(8, stride=2)
    z = pred(torch.randn(2, 8, 15, 20))
    assert z.shape == (2, 1, 8, 10)
    torch.testing.assert_close(torch.sigmoid(z), torch.full_like(z, 1 / (1 + math.exp(-3))))
    assert pred.conv.dilation == (1, 1) and pred.conv.padding == (1, 1)


# --- samplers ---------------------------------------------------------------------------------

def test_unknown_sampler_name_is_rejected():
    with pytest.raises(ValueError, match="'gumbel'.*deterministic"):
        build_sampler("gumbel")


@pytest.mark.parametrize("name", ["stochastic", "deterministic"])
def test_gumbel_training_mask_is_soft_and_sharpens_with_temperature(name):
    sampler = build_sampler(name)
    z = const_logits(0.3)
    hot = sampler(z, training=True, temperature=1.0).mask
    cold = sampler(z, training=True, temperature=0.01).mask
    assert ((hot > 0.05) & (hot < 0.95)).float().mean() > 0.5
    assert ((cold > 0.01) & (cold < 0.99)).float().mean() < 0.05
    # a relaxed Bernoulli(p): at low temperature its mean is p
    assert abs(cold.mean().item() - 0.3) < 0.02
    torch.testing.assert_close(sampler(z, True, 1.0).prob, torch.full_like(z, 0.3))


def test_stochastic_eval_is_a_bernoulli_draw_of_p():
    sampler = build_sampler("stochastic")
    mask = sampler(const_logits(0.3), training=False).mask
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert abs(mask.mean().item() - 0.3) < 0.02


def test_stochastic_eval_repeats_with_the_same_seed_and_differs_with_another():
    sampler = build_sampler("stochastic")
    z = torch.randn(2, 1, 32, 32)

    def draw(seed):
        return sampler(z, False, generator=torch.Generator().manual_seed(seed)).mask

    assert torch.equal(draw(0), draw(0))
    assert not torch.equal(draw(0), draw(1))


def test_deterministic_eval_thresholds_p_at_one_half_without_noise():
    sampler = build_sampler("deterministic")
    z = torch.tensor([-3.0, -1e-3, 0.0, 1e-3, 2.0]).view(1, 1, 1, 5)
    for seed in range(3):
        out = sampler(z, False, generator=torch.Generator().manual_seed(seed))
        assert out.mask.flatten().tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]


def test_relu_sampler_gate_is_the_mask_in_training_and_eval_and_gradient():
    sampler = build_sampler("relu")
    z = torch.tensor([-2.0, -0.1, 0.0, 0.1, 0.3, 3.0]).view(1, 1, 1, 6).requires_grad_()
    train = sampler(z, training=True, temperature=0.01)
    expected = [0.0, 0.0, 0.0, 1 - math.exp(-0.1), 1 - math.exp(-0.3), 1 - math.exp(-3.0)]
    torch.testing.assert_close(train.mask.flatten(), torch.tensor(expected))
    assert train.prob is train.mask  # the gate is both the mask and the loss "probability"
    # deterministic: no noise, no temperature
    assert torch.equal(sampler(z, True, 1.0).mask, train.mask)
    # test time keeps the trained weighting (z = 0.3: 0.26, not 1) on the same support
    test = sampler(z, training=False).mask
    torch.testing.assert_close(test, train.mask)
    assert test.flatten()[4].item() == pytest.approx(0.2592, abs=1e-4)
    # computed positions: the support g > 0, whatever the weight
    assert sampler.computed(test).flatten().tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    (grad,) = torch.autograd.grad(train.prob.sum(), z)
    torch.testing.assert_close(grad.flatten(), torch.tensor([0, 0, 0, math.exp(-0.1),
                                                             math.exp(-0.3), math.exp(-3.0)]))


def test_dense_sampler_samples_everything():
    out = build_sampler("dense")(torch.randn(2, 1, 4, 4), training=True)
    assert torch.equal(out.mask, torch.ones(2, 1, 4, 4))


def test_sampler_rejects_multichannel_logits():
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\).*\(2, 3, 4, 4\)"):
        build_sampler("stochastic")(torch.zeros(2, 3, 4, 4), training=True)


# --- temperature ------------------------------------------------------------------------------

def test_temperature_decays_exponentially_to_t_final_and_stays_there():
    temp = GumbelTemperature(t0=1.0, t_final=0.01, max_iters=100)
    values = [temp.value.item()]
    for _ in range(120):
        temp.step()
        values.append(temp.value.item())
    assert values[0] == 1.0
    assert values[50] == pytest.approx(0.1, rel=1e-5)  # half-way in log space
    assert values[100] == torch.tensor(0.01).item()
    assert all(v == values[100] for v in values[100:])
    assert all(a > b for a, b in zip(values[:100], values[1:101]))
    assert int(temp.iteration) == 120


def test_temperature_resumes_from_state_dict():
    uninterrupted = GumbelTemperature(t0=1.0, t_final=0.005, max_iters=60)
    first_half = GumbelTemperature(t0=1.0, t_final=0.005, max_iters=60)
    for _ in range(25):
        uninterrupted.step()
        first_half.step()
    state = first_half.state_dict()
    assert set(state) == {"value", "iteration"}

    resumed = GumbelTemperature(t0=1.0, t_final=0.005, max_iters=60)
    resumed.load_state_dict(state)
    assert resumed.value.item() == uninterrupted.value.item()
    for _ in range(40):
        uninterrupted.step()
        resumed.step()
        assert resumed.value.item() == uninterrupted.value.item()
    assert resumed.value.item() == torch.tensor(0.005).item()

    jumped = GumbelTemperature(t0=1.0, t_final=0.005, max_iters=60)
    jumped.set_iter(25)
    assert jumped.value.item() == first_half.value.item()


def test_temperature_reschedule_moves_the_end_point():
    temp = GumbelTemperature(t0=1.0, t_final=0.01, max_iters=1000)
    temp.set_iter(10)
    temp.reschedule(20)
    assert temp.value.item() == pytest.approx(0.1, rel=1e-5)
    for _ in range(10):
        temp.step()
    assert temp.value.item() == torch.tensor(0.01).item()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(t0=0.0), "t0=0.0"),
        (dict(t0=0.01, t_final=0.1), "t_final=0.1"),
        (dict(max_iters=0), "max_iters"),
    ],
)
def test_temperature_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GumbelTemperature(**kwargs)


# --- grid prior -------------------------------------------------------------------------------

def test_grid_prior_positions():
    grid = grid_prior_mask(23, 12, interval=11)
    assert grid.nonzero().tolist() == [[0, 0], [0, 11], [11, 0], [11, 11], [22, 0], [22, 11]]
    shifted = grid_prior_mask(10, 10, interval=4, offset=1)
    assert shifted.nonzero().tolist() == [[1, 1], [1, 5], [1, 9], [5, 1], [5, 5], [5, 9],
                                          [9, 1], [9, 5], [9, 9]]
    assert not grid_prior_mask(5, 5, interval=None).any()
    assert not grid_prior_mask(5, 5, interval=0).any()
    with pytest.raises(ValueError, match="offset"):
        grid_prior_mask(5, 5, interval=3, offset=3)
    with pytest.raises(ValueError, match="interval"):
        grid_prior_mask(5, 5, interval=-2)


# --- interpolation ----------------------------------------------------------------------------

def test_interpolation_keeps_sampled_positions_exactly_and_matches_the_2d_formula():
    torch.manual_seed(0)
    interp = GaussianInterpolation(window=7, init_scale=0.8)
    feat = torch.randn(2, 5, 17, 19)
    mask = (torch.rand(2, 1, 17, 19) < 0.3).float()
    out = interp(feat, mask)
    keep = mask.bool().expand_as(feat)
    assert torch.equal(out[keep], feat[keep])
    torch.testing.assert_close(out, interp_reference(feat, mask, 0.8), rtol=1e-5, atol=1e-6)
    soft = torch.rand(2, 1, 17, 19)
    torch.testing.assert_close(interp(feat, soft), interp_reference(feat, soft, 0.8),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", [3.0, 0.5])
def test_interpolation_reconstructs_a_constant_field(scale):
    interp = GaussianInterpolation(window=7, init_scale=scale)
    feat = torch.full((1, 3, 22, 22), 2.5)
    mask = torch.zeros(1, 1, 22, 22)
    mask[..., ::3, ::3] = 1  # every position has a sampled neighbour within distance 1.5
    torch.testing.assert_close(interp(feat, mask), feat, rtol=1e-6, atol=0)
    soft = torch.rand(1, 1, 22, 22) * 0.9 + 0.1
    torch.testing.assert_close(interp(feat, soft), feat, rtol=1e-6, atol=0)


def test_interpolation_reach_is_set_by_the_bandwidth_not_the_window():
    """At s = 3, G(1, 1) = 1.8e-4 >= eps but G(2, 0) = 2.2e-8 < eps: a lone sampled position
    fills its 3x3 neighbourhood exactly and only a shrunk G * (M * F) / eps two steps away."""
    interp = GaussianInterpolation(window=7, init_scale=3.0, eps=1e-5)
    feat = torch.full((1, 1, 9, 9), 2.0)
    mask = torch.zeros(1, 1, 9, 9)
    mask[..., 4, 4] = 1
    out = interp(feat, mask)[0, 0]
    assert torch.allclose(out[3:6, 3:6], torch.full((3, 3), 2.0), rtol=1e-6)
    g20 = 9 / (2 * math.pi) * math.exp(-9 * 4 / 2)  # G at offset (2, 0)
    assert g20 < 1e-5
    assert out[4, 6].item() == pytest.approx(2.0 * g20 / 1e-5, rel=1e-4)  # ~0.0044, not 2
    assert out[4, 8].item() < 1e-12  # (4, 0): G = 1e-31, effectively out of reach
    # a smaller bandwidth reaches further: at s = 1.5, (2, 0) is filled exactly
    interp.scale.data.fill_(1.5)
    assert interp(feat, mask)[0, 0, 4, 6].item() == pytest.approx(2.0, rel=1e-6)


def test_interpolation_without_support_is_zero_and_all_ones_is_identity():
    interp = GaussianInterpolation()
    feat = torch.randn(1, 2, 9, 9)
    assert torch.equal(interp(feat, torch.zeros(1, 1, 9, 9)), torch.zeros_like(feat))
    assert interp(feat, torch.ones(1, 1, 9, 9)) is feat


def test_interpolation_bandwidth_gets_a_gradient():
    interp = GaussianInterpolation(init_scale=1.0)
    feat = torch.randn(1, 2, 12, 12)
    mask = (torch.rand(1, 1, 12, 12) < 0.4).float()
    interp(feat, mask).pow(2).sum().backward()
    assert interp.scale.grad is not None and interp.scale.grad.abs() > 0


def test_interpolation_rejects_mismatched_mask():
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        GaussianInterpolation()(torch.zeros(1, 2, 8, 8), torch.zeros(1, 1, 4, 4))


@pytest.mark.parametrize("scale, kept", [(3.0, 21), (2.5, 25), (2.0, 45), (1.5, 49)])
def test_sparse_interpolation_keeps_the_taps_docs_design_md_names(scale, kept):
    """docs/design.md ("Execution paths", step 3): taps below 1e-7 * eps are dropped; at the
    initial s = 3 that is the 5x5 square without its (+-2, +-2) corners, not the whole 5x5."""
    from seg_sparse.sampling.sparse_interpolation import TAP_TOLERANCE, kernel_taps

    eps = 1e-5
    d = torch.arange(-3, 4, dtype=torch.float64)
    kernel_1d = scale / math.sqrt(2 * math.pi) * torch.exp(-(scale * d) ** 2 / 2)
    offsets, weights = kernel_taps(kernel_1d, eps)
    assert len(offsets) == kept
    assert float(weights.min()) >= TAP_TOLERANCE * eps
    if scale == 3.0:
        assert set(offsets) == {(i, j) for i in range(-2, 3) for j in range(-2, 3)
                                if i * i + j * j <= 5}
        dropped = kernel_1d[:, None] * kernel_1d[None, :]
        assert float(dropped[5, 5]) < 1e-15  # G(2, 2): 3.3e-16, a 3.3e-11 relative effect
