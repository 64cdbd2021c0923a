"""The Triton kernels of the sparse path against torch: positions, gathered GEMM, conv at
positions (plain, grouped, deformable), interpolation fill. On CPU in Triton's interpreter."""

from __future__ import annotations

import pytest

pytest.importorskip("triton")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torchvision.ops import deform_conv2d  # noqa: E402
from triton_support import DEVICE, interpreted, max_rel_err  # noqa: E402, F401

from seg_sparse.ops.cpu.taps import ConvGeometry  # noqa: E402
from seg_sparse.sampling import GaussianInterpolation  # noqa: E402
from seg_sparse.sampling.sparse_interpolation import kernel_taps  # noqa: E402

pytestmark = pytest.mark.usefixtures("interpreted")


def kernels():
    import seg_sparse.ops.triton as kernels

    return kernels


def random_mask(shape, density, seed=0, soft=False):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(shape, generator=g) < density).float()
    if soft:
        mask = mask * torch.rand(shape, generator=g)
    return mask.to(DEVICE)


def rows_of(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).contiguous()


@pytest.mark.parametrize("density", [0.0, 0.3, 1.0])
def test_positions_are_the_masks_nonzeros_in_order_with_the_count_on_the_device(density):
    mask = random_mask((2, 1, 7, 9), density, soft=True)
    positions = kernels().compact_positions(mask)
    expected = (mask.reshape(-1) > 0).nonzero().squeeze(1)
    n = expected.numel()
    assert positions.count.device == mask.device and positions.count.dtype == torch.int32
    assert int(positions.count) == n and positions.capacity == mask.numel()
    assert torch.equal(positions.index[:n].long(), expected)
    column = torch.full((mask.numel(),), -1, dtype=torch.long, device=DEVICE)
    column[expected] = torch.arange(n, device=DEVICE)
    assert torch.equal(positions.column.long(), column)


@pytest.fixture
def small_row_blocks(monkeypatch):
    """16-row blocks: many programs, most of them past the count (the early exit)."""
    import seg_sparse.ops.triton.conv as conv
    import seg_sparse.ops.triton.gemm as gemm

    monkeypatch.setattr(gemm, "MAX_BLOCK_ROWS", 16)
    monkeypatch.setattr(conv, "MAX_BLOCK_ROWS", 16)


@pytest.mark.usefixtures("small_row_blocks")
@pytest.mark.parametrize("relu", [False, True])
def test_gathered_linear_compact_and_scattered(relu):
    k = kernels()
    torch.manual_seed(0)
    table = torch.randn(70, 20, device=DEVICE)
    weight = torch.randn(20, 24, device=DEVICE)
    bias = torch.randn(24, device=DEVICE)
    positions = k.compact_positions(random_mask((70,), 0.3))
    n = int(positions.count)
    index = positions.index[:n].long()
    expected = table[index] @ weight + bias
    expected = expected.relu() if relu else expected
    compact = k.gathered_linear(table, weight, bias, index=positions.index,
                                count=positions.count, relu=relu)
    assert compact.shape == (70, 24)
    assert max_rel_err(compact[:n], expected) < 1e-5
    out = torch.full((70, 24), 7.0, device=DEVICE)
    k.gathered_linear(table, weight, bias, index=positions.index, count=positions.count,
                      relu=relu, scatter=True, out=out)
    assert max_rel_err(out[index], expected) < 1e-5
    untouched = torch.ones(70, dtype=torch.bool, device=DEVICE)
    untouched[index] = False
    assert bool((out[untouched] == 7.0).all())


def test_gathered_linear_without_index_reads_the_first_count_rows():
    k = kernels()
    torch.manual_seed(1)
    table = torch.randn(40, 5, device=DEVICE)
    weight = torch.randn(5, 3, device=DEVICE)
    count = torch.tensor([13], dtype=torch.int32, device=DEVICE)
    out = k.gathered_linear(table, weight, count=count)
    assert max_rel_err(out[:13], table[:13] @ weight) < 1e-5
    assert max_rel_err(k.gathered_linear(table, weight), table @ weight) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gathered_linear_half_inputs_accumulate_in_float32(dtype):
    k = kernels()
    torch.manual_seed(2)
    table = torch.randn(50, 300, device=DEVICE).to(dtype)  # 300 products per output
    weight = torch.randn(300, 20, device=DEVICE).to(dtype)
    bias = torch.randn(20, device=DEVICE)
    out = k.gathered_linear(table, weight, bias)
    assert out.dtype == dtype
    expected = table.float() @ weight.float() + bias  # the rounded inputs, exact sums
    # float32 accumulation: only the output's rounding to the half dtype is left
    tolerance = 2 ** -7 if dtype == torch.bfloat16 else 2 ** -10
    assert max_rel_err(out, expected) < tolerance


def test_gathered_linear_refuses_what_it_cannot_compute():
    k = kernels()
    table = torch.randn(10, 4, device=DEVICE)
    with pytest.raises(ValueError, match=r"weight must be contiguous \(4, N\)"):
        k.gathered_linear(table, torch.randn(5, 3, device=DEVICE))
    with pytest.raises(ValueError, match="weight is torch.float16, the table torch.float32"):
        k.gathered_linear(table, torch.randn(4, 3, device=DEVICE).half())
    with pytest.raises(ValueError, match="scattered output needs the index"):
        k.gathered_linear(table, torch.randn(4, 3, device=DEVICE), scatter=True)
    with pytest.raises(ValueError, match="contiguous channels"):
        k.gathered_linear(table.t(), torch.randn(10, 3, device=DEVICE))


CONVS = {  # name: (stride, padding, dilation, groups)
    "plain": (1, 1, 1, 1),
    "stride2": (2, 1, 1, 1),
    "dilated": (1, 2, 2, 1),
    "grouped-stride2": (2, 1, 1, 2),
    "grouped-dilated": (1, 3, 3, 4),
}


@pytest.mark.usefixtures("small_row_blocks")
@pytest.mark.parametrize("deform", [False, True])
@pytest.mark.parametrize("name", list(CONVS))
def test_conv_at_positions_equals_the_dense_convolution_there(name, deform):
    k = kernels()
    stride, padding, dilation, groups = CONVS[name]
    torch.manual_seed(3)
    c_in, c_out = 8, 12
    x = torch.randn(2, c_in, 7, 10, device=DEVICE)
    weight = torch.randn(c_out, c_in // groups, 3, 3, device=DEVICE)
    bias = torch.randn(c_out, device=DEVICE)
    geom = ConvGeometry.of((7, 10), (3, 3), stride, padding, dilation)
    geometry = dict(stride=stride, padding=padding, dilation=dilation)
    offset = None
    if deform:  # DCN with conv groups: the bilinear taps are shared by all channels
        offset_map = 1.5 * torch.randn(2, 18, geom.out_h, geom.out_w, device=DEVICE)
        dense = deform_conv2d(x, offset_map, weight, bias, **geometry)
    else:
        dense = F.conv2d(x, weight, bias, groups=groups, **geometry)
    positions = k.compact_positions(random_mask((2, 1, geom.out_h, geom.out_w), 0.4))
    n = int(positions.count)
    index = positions.index[:n].long()
    if deform:
        offset = torch.zeros(positions.capacity, 18, device=DEVICE)
        offset[:n] = rows_of(offset_map)[index]
    got = k.conv2d_at_positions(rows_of(x), geom, k.ConvWeights.of(weight, bias, groups),
                                positions.index, positions.count, offset=offset)
    assert got.shape == (positions.capacity, c_out)
    assert max_rel_err(got[:n], rows_of(dense)[index]) < 1e-5


def test_deformable_conv_in_bfloat16_accumulates_in_float32():
    k = kernels()
    torch.manual_seed(4)
    x = torch.randn(1, 64, 6, 7, device=DEVICE).bfloat16()
    weight = torch.randn(16, 64, 3, 3, device=DEVICE).bfloat16()
    geom = ConvGeometry.of((6, 7), (3, 3), 1, 1, 1)
    offset_map = torch.randn(1, 18, 6, 7, device=DEVICE)
    positions = k.compact_positions(torch.ones(1, 1, 6, 7, device=DEVICE))
    got = k.conv2d_at_positions(rows_of(x), geom, k.ConvWeights.of(weight, None),
                                positions.index, positions.count, offset=rows_of(offset_map))
    expected = deform_conv2d(x.float(), offset_map, weight.float(), padding=1)
    assert got.dtype == torch.bfloat16
    assert max_rel_err(got, rows_of(expected)) < 2e-2  # bilinear taps rounded to bfloat16


def test_conv_at_positions_refuses_mismatched_inputs():
    k = kernels()
    geom = ConvGeometry.of((4, 4), (3, 3), 1, 1, 1)
    weights = k.ConvWeights.of(torch.randn(4, 6, 3, 3, device=DEVICE), None)
    positions = k.compact_positions(torch.ones(16, device=DEVICE))
    with pytest.raises(ValueError, match="table has 5 channels, the weight reads 6"):
        k.conv2d_at_positions(torch.randn(16, 5, device=DEVICE), geom, weights,
                              positions.index, positions.count)
    with pytest.raises(ValueError, match=r"offset must be \(16, 18\) rows"):
        k.conv2d_at_positions(torch.randn(16, 6, device=DEVICE), geom, weights,
                              positions.index, positions.count,
                              offset=torch.zeros(16, 36, device=DEVICE))


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("scale", [3.0, 1.2])
def test_fill_is_the_gaussian_interpolation_of_the_computed_rows(scale, soft):
    k = kernels()
    torch.manual_seed(5)
    interp = GaussianInterpolation(window=7, init_scale=scale).to(DEVICE)
    feats = torch.randn(2, 5, 9, 13, device=DEVICE)
    mask = random_mask((2, 1, 9, 13), 0.25, soft=soft)
    positions = k.compact_positions(mask)
    n = int(positions.count)
    computed = torch.zeros(positions.capacity, 5, device=DEVICE)
    computed[:n] = rows_of(feats)[positions.index[:n].long()]
    taps = k.FillTaps.of(*kernel_taps(interp.kernel_1d(torch.float64, DEVICE), interp.eps),
                         interp.eps, DEVICE)
    with torch.no_grad():
        expected = rows_of(interp(feats, mask))
    got = k.interpolate_fill(computed, positions.column, mask, taps, (9, 13))
    assert max_rel_err(got, expected) < 1e-5
    base = torch.randn(2 * 9 * 13, 5, device=DEVICE)
    shift = torch.randn(5, device=DEVICE)
    fused = k.interpolate_fill(computed, positions.column, mask, taps, (9, 13), base=base,
                               shift=shift, relu=True)
    assert max_rel_err(fused, (expected + base + shift).relu()) < 1e-5


def test_fill_without_a_sampled_neighbour_in_reach_is_zero_as_the_masked_path():
    k = kernels()
    interp = GaussianInterpolation(window=7).to(DEVICE)
    mask = torch.zeros(1, 1, 12, 12, device=DEVICE)
    mask[..., 0, 0] = 1
    feats = torch.randn(1, 3, 12, 12, device=DEVICE)
    positions = k.compact_positions(mask)
    computed = torch.zeros(positions.capacity, 3, device=DEVICE)
    computed[:1] = rows_of(feats)[:1]  # the one sampled position, (0, 0)
    taps = k.FillTaps.of(*kernel_taps(interp.kernel_1d(torch.float64, DEVICE), interp.eps),
                         interp.eps, DEVICE)
    got = k.interpolate_fill(computed, positions.column, mask, taps, (12, 12))
    with torch.no_grad():
        expected = rows_of(interp(feats, mask))
    assert bool((got[-1] == 0).all())  # far corner: no tap reaches a sampled position
    assert max_rel_err(got, expected) < 1e-5
