"""The sparse block pinned down against an independent reference forward (docs/design.md,
"The method as implemented").

A test-double sampler hands the block fixed, non-trivial binary masks, so a misplaced or
swapped interpolation, a wrong mask resolution, a grid prior applied in the wrong place, a
window that is not the configured one or conv2 without its groups all change the output.
"""

from __future__ import annotations

import pytest
import torch
from sampling_reference import bottleneck_reference, grid_reference, make_block
from torch import nn

from seg_sparse.sampling import (
    MaskSampler,
    SampleResult,
    SparseBottleneck,
    block_densities,
    build_sampler,
    grid_prior_mask,
)

GRID = 3  # every position lies within one step of a grid point: all positions are in reach


class FixedMasks(MaskSampler):
    """Returns ``masks[0]`` for the first predictor call of a forward, ``masks[1]`` for the
    second, in training and in eval alike (prob: sigmoid of the logits, unused here)."""

    name = "fixed"

    def __init__(self, mask1: torch.Tensor, mask2: torch.Tensor) -> None:
        self.masks = (mask1, mask2)
        self.calls = 0

    def sample(self, logits, training, temperature=1.0, generator=None) -> SampleResult:
        mask = self.masks[self.calls % 2]
        self.calls += 1
        assert mask.shape == logits.shape, "mask fixture at the wrong resolution"
        return SampleResult(torch.sigmoid(logits), mask.clone())


def make_reference_block(stride=1, dilation=1, with_dcn=False, groups=1, window=7):
    """The tiny test block with grid interval 3, the given window and groups, and bandwidths
    1.0 / 1.3 (different, so swapping interp1 and interp2 shows)."""
    block = make_block("stochastic", stride, dilation, with_dcn, grid_interval=GRID,
                       interp_window=window, groups=groups, width=4 * groups)
    block.interp1.scale.data.fill_(1.0)
    block.interp2.scale.data.fill_(1.3)
    return block


def random_mask(b: int, h: int, w: int, density: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 1, h, w, generator=gen) < density).float()


# H, W = 13, 16: (H - 1) and (W - 1) are multiples of 3, and so are those of the stride-2
# output (7, 8) up to one step, so every position has a grid point within one step.
@pytest.mark.parametrize("stride, dilation, with_dcn, groups, window", [
    (1, 1, False, 1, 7),
    (2, 1, True, 1, 7),
    (1, 2, True, 2, 7),
    (2, 1, False, 2, 5),
    (1, 1, True, 1, 3),
])
@pytest.mark.parametrize("training", [False, True])
def test_block_equals_the_reference_forward_with_fixed_binary_masks(
        stride, dilation, with_dcn, groups, window, training):
    block = make_reference_block(stride, dilation, with_dcn, groups, window).train(training)
    x = torch.randn(2, 16, 13, 16)
    h2, w2 = (13 + stride - 1) // stride, (16 + stride - 1) // stride
    drawn1 = random_mask(2, 13, 16, 0.35, seed=1)
    drawn2 = random_mask(2, h2, w2, 0.25, seed=2)
    block.sampler = FixedMasks(drawn1, drawn2)

    out = block(x)

    m1 = torch.maximum(drawn1, grid_reference(13, 16, GRID))  # grid prior by hand
    m2 = torch.maximum(drawn2, grid_reference(h2, w2, GRID))
    assert 0.3 < m1.mean() < 0.7 and 0.3 < m2.mean() < 0.7  # non-trivial masks
    assert torch.equal(block.last_sampling.mask1, m1)
    assert torch.equal(block.last_sampling.mask2, m2)
    expected = bottleneck_reference(block, x, m1, m2, training)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    d1, d2 = block_densities([block])["0"]
    torch.testing.assert_close(d1, m1.mean((1, 2, 3)))
    torch.testing.assert_close(d2, m2.mean((1, 2, 3)))


def test_relu_block_tests_with_the_gate_it_was_trained_with():
    block = make_reference_block(with_dcn=True)
    block.sampler = build_sampler("relu")
    nn.init.normal_(block.mask1.conv.weight, std=0.2)
    nn.init.normal_(block.mask2.conv.weight, std=0.2)
    block.mask1.conv.bias.data.fill_(0.2)
    block.mask2.conv.bias.data.fill_(0.0)
    x = torch.randn(2, 16, 13, 16)

    block.train()
    for bn in block.modules():  # BN in eval in both passes: only the sampler's mode differs
        if isinstance(bn, nn.BatchNorm2d):
            bn.eval()
    train_out = block(x)
    train_masks = block.last_sampling
    block.eval()
    with torch.no_grad():
        test_out = block(x)
    test_masks = block.last_sampling

    for train_mask, test_mask in ((train_masks.mask1, test_masks.mask1),
                                  (train_masks.mask2, test_masks.mask2)):
        torch.testing.assert_close(test_mask, train_mask.detach())
        grid = grid_prior_mask(*test_mask.shape[-2:], interval=GRID)
        assert (test_mask[:, 0][:, grid] == 1).all()
        soft = test_mask[:, 0][:, ~grid]
        assert ((soft > 0) & (soft < 0.9)).any() and (soft == 0).any()
    torch.testing.assert_close(test_out, train_out.detach())
    d1, d2 = block_densities([block])["0"]  # the fraction of positions with g > 0
    torch.testing.assert_close(d2, (test_masks.mask2 > 0).float().mean((1, 2, 3)))
    assert (d2 > test_masks.mask2.mean((1, 2, 3))).all()


def test_grid_prior_is_applied_to_soft_training_masks_and_not_to_the_loss_probabilities():
    block = make_reference_block(stride=2)
    block.sampler = build_sampler("stochastic")
    block.mask1.conv.bias.data.fill_(-1.0)
    block.mask2.conv.bias.data.fill_(-1.0)
    block.train().set_generator(torch.Generator().manual_seed(0))
    x = torch.randn(2, 16, 13, 16)
    block(x)
    out = block.last_sampling
    for mask, prob in ((out.mask1, out.prob1), (out.mask2, out.prob2)):
        grid = grid_prior_mask(*mask.shape[-2:], interval=GRID)
        assert (mask[:, 0][:, grid] == 1).all()
        rest = mask[:, 0][:, ~grid]
        assert ((rest > 0) & (rest < 1)).all()  # still soft (T = 1) off the grid
        torch.testing.assert_close(prob, torch.full_like(prob, torch.sigmoid(torch.tensor(-1.0))))
    (grad,) = torch.autograd.grad(out.mask2.sum(), block.mask2.conv.bias)
    assert grad.abs() > 0  # off-grid positions carry the gradient


def test_mask_predictors_are_undilated_in_dilated_blocks():
    """As in the authors' code: z at a position sees only the 3x3 neighbourhood of x."""
    block = make_reference_block(dilation=4)
    for predictor in (block.mask1, block.mask2):
        assert predictor.conv.dilation == (1, 1) and predictor.conv.padding == (1, 1)
        nn.init.normal_(predictor.conv.weight)
    x = torch.randn(1, 16, 13, 16)
    far = x.clone()
    far[..., 6, 8] += 10.0  # 2 steps from (6, 6) and (4, 8), i.e. outside their 3x3 window
    for predictor in (block.mask1, block.mask2):
        z, z_far = predictor(x), predictor(far)
        assert z[..., 6, 6] == z_far[..., 6, 6] and z[..., 4, 8] == z_far[..., 4, 8]
        assert z[..., 6, 7] != z_far[..., 6, 7]


def test_resnext_blocks_are_the_sparse_block_with_their_true_groups():
    from seg_sparse.models.backbones import SparseResNeXt

    backbone = SparseResNeXt(depth=50, groups=4, base_width=4, stem_channels=16,
                             base_channels=16, sampler="stochastic")
    blocks = [m for m in backbone.modules() if isinstance(m, SparseBottleneck)]
    assert len(blocks) == 16
    for block in blocks:
        assert type(block) is SparseBottleneck
        assert block.groups == block.conv2.groups == 4
        assert "groups=4" in block.extra_repr()
    first = backbone.layer1[0]  # width floor(16 * 4 / 16) * 4 = 16, as mmseg's ResNeXt
    assert first.conv1.out_channels == first.conv2.in_channels == first.conv3.in_channels == 16
