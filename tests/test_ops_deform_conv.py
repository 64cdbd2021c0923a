"""seg_sparse.ops: the tap-gather DCN against torchvision (values, every gradient), positions mode
against the dense result, layouts, tiling, autocast and bad input."""


import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d as tv_deform_conv2d

from seg_sparse.ops import conv2d_at, deform_conv2d, deform_conv2d_at
from seg_sparse.ops.cpu import deform_conv


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.detach(), expected.detach()
    return float((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-12))


def out_size(size: int, stride: int, padding: int, dilation: int, kernel: int = 3) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def make_case(batch=2, c_in=8, c_out=6, hw=(11, 13), kernel=(3, 3), stride=1, padding=1,
              dilation=1, groups=1, offset_groups=1, modulated=False, bias=True,
              offset_std=3.0, dtype=torch.float32, seed=0):
    """Inputs of one DCN call; offsets of std 3 px send many samples outside the image."""
    gen = torch.Generator().manual_seed(seed)
    h_out = out_size(hw[0], stride, padding, dilation, kernel[0])
    w_out = out_size(hw[1], stride, padding, dilation, kernel[1])
    k = kernel[0] * kernel[1]

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=dtype) * scale).requires_grad_()

    return dict(
        input=randn(batch, c_in, *hw),
        offset=randn(batch, 2 * offset_groups * k, h_out, w_out, scale=offset_std),
        weight=randn(c_out, c_in // groups, *kernel, scale=0.3),
        bias=randn(c_out) if bias else None,
        mask=(torch.rand(batch, offset_groups * k, h_out, w_out, generator=gen, dtype=dtype)
              .requires_grad_() if modulated else None),
        stride=(stride, stride), padding=(padding, padding), dilation=(dilation, dilation),
    )


def assert_matches_torchvision(case, tol=1e-5):
    ours = deform_conv2d(**case)
    ref = tv_deform_conv2d(**case)
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    assert rel_err(ours, ref) < tol
    grad = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=ref.dtype)
    names = [n for n in ("input", "offset", "weight", "bias", "mask") if case[n] is not None]
    tensors = [case[n] for n in names]
    ours_grads = torch.autograd.grad(ours, tensors, grad)
    ref_grads = torch.autograd.grad(ref, tensors, grad)
    for name, a, b in zip(names, ours_grads, ref_grads):
        assert a.shape == b.shape
        assert rel_err(a, b) < tol, f"gradient of {name}: relative error {rel_err(a, b):.2e}"
    return ours


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(stride=2),
    dict(dilation=2, padding=2),
    dict(dilation=4, padding=4, hw=(13, 15)),
    dict(groups=2, c_out=4),
    dict(groups=4, c_out=8, stride=2, padding=2, dilation=2),
    dict(offset_groups=2),
    dict(groups=2, offset_groups=4, c_out=4),
    dict(batch=3, hw=(9, 8), bias=False, padding=0),
    dict(modulated=True, offset_groups=2, groups=2, c_out=4),
    dict(kernel=(3, 1), padding=1, hw=(7, 5)),
    dict(batch=1, c_in=3, c_out=5, hw=(5, 7), stride=2),
], ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "plain")
def test_values_and_all_gradients_match_torchvision(kwargs):
    assert_matches_torchvision(make_case(**kwargs))


def test_integer_offsets_match_torchvision_at_kink_points():
    """Zero offsets (the zero-initialised offset conv) put the padding taps exactly one pixel
    outside the image, where the bilinear weight has a kink; integer offsets put every sample on
    a kink. The gradients must still be torchvision's (one-sided) ones."""
    for offset_std, seed in ((0.0, 0), (2.0, 1)):
        case = make_case(offset_std=offset_std, seed=seed)
        with torch.no_grad():
            case["offset"].copy_(case["offset"].round())
        out = assert_matches_torchvision(case)
        if offset_std == 0:  # zero offsets: a plain convolution
            ref = F.conv2d(case["input"], case["weight"], case["bias"], padding=1)
            assert rel_err(out, ref) < 1e-5


def test_float64_matches_torchvision_to_rounding():
    assert_matches_torchvision(make_case(dtype=torch.float64, modulated=True, stride=2), 1e-12)


def test_gradcheck_on_a_tiny_case():
    case = make_case(batch=1, c_in=2, c_out=2, hw=(4, 5), dtype=torch.float64, offset_std=1.5,
                     modulated=True)
    args = (case["input"], case["offset"], case["weight"], case["bias"], (1, 1), (1, 1), (1, 1),
            case["mask"])
    assert torch.autograd.gradcheck(deform_conv2d, args)


def test_tiles_give_the_same_values_and_gradients(monkeypatch):
    """Tiny tiles and tap chunks (a few positions each): the tiled forward, and the backward
    that accumulates the input gradient of overlapping table slices, equal one big tile."""
    case = make_case(batch=2, hw=(9, 10), stride=2, groups=2, c_out=4)
    grad = torch.randn(2, 4, 5, 5)
    names = ("input", "offset", "weight", "bias")
    whole = deform_conv2d(**case)
    whole_grads = torch.autograd.grad(whole, [case[n] for n in names], grad)
    # tap chunks of 3 positions (9 x 4 taps each), tiles of 6 (rounded down from 7 to whole
    # chunks; 8 input channels x 9 kernel points x 4 bytes per position): tiles and chunks
    # cross the boundary between the two 5x5 output images
    monkeypatch.setitem(deform_conv.TILE_BYTES, "cpu", 7 * 8 * 9 * 4)
    monkeypatch.setitem(deform_conv.CHUNK_ELEMENTS, "cpu", 3 * 9 * 4)
    tiled = deform_conv2d(**case)
    tiled_grads = torch.autograd.grad(tiled, [case[n] for n in names], grad)
    torch.testing.assert_close(tiled, whole)
    for a, b in zip(tiled_grads, whole_grads):
        torch.testing.assert_close(a, b)


def test_output_keeps_the_input_memory_format():
    case = make_case(batch=2, c_in=4, c_out=4, hw=(6, 7))
    dense = deform_conv2d(**case)
    assert dense.is_contiguous()
    case["input"] = case["input"].detach().contiguous(memory_format=torch.channels_last)
    cl = deform_conv2d(**case)
    assert cl.is_contiguous(memory_format=torch.channels_last) and not cl.is_contiguous()
    torch.testing.assert_close(cl, dense)


def test_autocast_computes_in_float32_like_torchvision():
    case = make_case()
    with torch.no_grad():
        ref = deform_conv2d(**case)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = deform_conv2d(**case)
            tv = tv_deform_conv2d(**case)
    assert out.dtype == tv.dtype == torch.float32
    torch.testing.assert_close(out, ref)


def _positions(count: int, n: int, seed: int = 0) -> torch.Tensor:
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed))[:n]


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(stride=2, dilation=2, padding=2),
    dict(groups=2, c_out=4, modulated=True, offset_groups=2),
], ids=["plain", "stride2-dilation2", "groups-v2"])
def test_deform_conv_at_positions_equals_dense_result_there(kwargs):
    case = make_case(batch=2, **kwargs)
    with torch.no_grad():
        dense = deform_conv2d(**case)  # (B, C_out, Ho, Wo)
        b, c_out, h_out, w_out = dense.shape
        positions = _positions(b * h_out * w_out, 40)
        positions = torch.cat((positions, positions[:3]))  # repeats are fine
        dense_rows = dense.permute(0, 2, 3, 1).reshape(-1, c_out)[positions]
        offset_rows = case["offset"].permute(0, 2, 3, 1).reshape(-1, case["offset"].shape[1])
        mask = case["mask"]
        mask_rows = None if mask is None else mask.permute(0, 2, 3, 1).reshape(-1, mask.shape[1])
        nhwc = case["input"].permute(0, 2, 3, 1)
        geometry = dict(stride=case["stride"], padding=case["padding"],
                        dilation=case["dilation"])
        rows = deform_conv2d_at(
            nhwc, positions, offset_rows[positions], case["weight"], case["bias"],
            mask=None if mask_rows is None else mask_rows[positions], **geometry,
        )
        assert rows.shape == (positions.shape[0], c_out)
        torch.testing.assert_close(rows, dense_rows, rtol=1e-5, atol=1e-5)
        # the same input given as rows + in_hw
        flat = nhwc.reshape(-1, nhwc.shape[-1])
        again = deform_conv2d_at(
            flat, positions, offset_rows[positions], case["weight"], case["bias"],
            mask=None if mask_rows is None else mask_rows[positions], in_hw=nhwc.shape[1:3],
            **geometry,
        )
        torch.testing.assert_close(again, rows)


@pytest.mark.parametrize("per_point", [False, True], ids=["tap-images", "per-point"])
@pytest.mark.parametrize("stride, padding, dilation, groups, hw", [
    (1, 1, 1, 1, (8, 9)), (2, 1, 1, 1, (9, 11)), (1, 2, 2, 2, (8, 9)), (2, 0, 2, 4, (11, 10)),
    (1, 4, 4, 1, (7, 6)),
])
def test_conv2d_at_positions_equals_conv2d_there(stride, padding, dilation, groups, hw,
                                                 per_point, monkeypatch):
    # per-point: the wide-input path (one GEMM per kernel point) on few channels, in chunks
    monkeypatch.setattr(deform_conv, "PER_POINT_MIN_CHANNELS", 1 if per_point else 1 << 30)
    monkeypatch.setattr(deform_conv, "PER_POINT_ROWS", 7)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 8, *hw, generator=gen)
    weight = torch.randn(8, 8 // groups, 3, 3, generator=gen)
    bias = torch.randn(8, generator=gen)
    dense = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    b, c, h_out, w_out = dense.shape
    positions = _positions(b * h_out * w_out, 25, seed=1)
    rows = conv2d_at(x.permute(0, 2, 3, 1), positions, weight, bias, stride, padding, dilation)
    torch.testing.assert_close(rows, dense.permute(0, 2, 3, 1).reshape(-1, c)[positions],
                               rtol=1e-5, atol=1e-5)


def test_per_point_conv2d_at_has_conv2d_gradients(monkeypatch):
    monkeypatch.setattr(deform_conv, "PER_POINT_MIN_CHANNELS", 1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 7, 9, generator=gen, requires_grad=True)
    weight = torch.randn(5, 6, 3, 3, generator=gen, requires_grad=True)
    bias = torch.randn(5, generator=gen, requires_grad=True)
    positions = _positions(2 * 7 * 9, 40, seed=2)
    grad = torch.randn(40, 5, generator=gen)
    rows = conv2d_at(x.permute(0, 2, 3, 1), positions, weight, bias, padding=2, dilation=2)
    expected = F.conv2d(x, weight, bias, padding=2, dilation=2).permute(0, 2, 3, 1)
    got = torch.autograd.grad(rows, (x, weight, bias), grad)
    want = torch.autograd.grad(expected.reshape(-1, 5)[positions], (x, weight, bias), grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_no_positions_give_no_rows():
    x = torch.randn(1, 5, 6, 4)
    weight = torch.randn(7, 4, 3, 3)
    empty = torch.zeros(0, dtype=torch.int64)
    assert conv2d_at(x, empty, weight, padding=1).shape == (0, 7)
    assert deform_conv2d_at(x, empty, torch.zeros(0, 18), weight, padding=1).shape == (0, 7)


@pytest.mark.parametrize("change, message", [
    (dict(offset=torch.zeros(2, 10, 11, 13)), "offset has 10 channels"),
    (dict(offset=torch.zeros(2, 18, 5, 13)), "does not match the output"),
    (dict(weight=torch.zeros(6, 3, 3, 3)), "does not fit 8 input channels"),
    (dict(bias=torch.zeros(5)), "bias must have shape"),
    (dict(mask=torch.zeros(2, 8, 11, 13)), "mask must have shape"),
    (dict(offset=torch.zeros(2, 54, 11, 13)), "not divisible by the 3 offset groups"),
], ids=["offset-channels", "offset-size", "weight", "bias", "mask", "offset-groups"])
def test_bad_arguments_raise_clear_errors(change, message):
    case = make_case() | change
    with pytest.raises(ValueError, match=message):
        deform_conv2d(**case)


def test_bad_positions_and_inputs_raise_clear_errors():
    x = torch.randn(2, 5, 6, 4)
    weight = torch.randn(7, 4, 3, 3)
    with pytest.raises(ValueError, match=r"positions must lie in \[0, B \* H_out \* W_out\)"):
        conv2d_at(x, torch.tensor([60]), weight, padding=1)
    with pytest.raises(ValueError, match="1-D int64"):
        conv2d_at(x, torch.tensor([[0]]), weight, padding=1)
    with pytest.raises(ValueError, match=r"needs in_hw=\(H, W\)"):
        conv2d_at(x.reshape(-1, 4), torch.tensor([0]), weight, padding=1)
    with pytest.raises(ValueError, match="not a whole number of 4x6 images"):
        conv2d_at(x.reshape(-1, 4), torch.tensor([0]), weight, padding=1, in_hw=(4, 6))
    with pytest.raises(ValueError, match="one per position"):
        deform_conv2d_at(x, torch.tensor([0, 1]), torch.zeros(3, 18), weight, padding=1)
    with pytest.raises(ValueError, match="too small for kernel"):
        conv2d_at(torch.randn(1, 1, 1, 4), torch.tensor([0]), weight)


def test_torchvision_runs_on_listed_devices_or_on_request(monkeypatch):
    calls = []
    monkeypatch.setattr(deform_conv.tv_ops, "deform_conv2d", lambda *args: calls.append(args))
    case = make_case()
    deform_conv2d(**case)  # CPU: the taps
    assert calls == []
    deform_conv2d(**case, use_taps=False)
    monkeypatch.setattr(deform_conv, "TORCHVISION_DEVICES", frozenset({"cpu"}))
    deform_conv2d(**case)
    assert len(calls) == 2
    assert isinstance(deform_conv2d(**case, use_taps=True), torch.Tensor)


def test_traced_graphs_hold_torchvisions_op():
    """jit tracing (mmengine's FLOP counter, ONNX export) sees one torchvision::deform_conv2d."""
    case = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in make_case().items()}
    traced = torch.jit.trace(lambda x, o: deform_conv2d(x, o, case["weight"], case["bias"],
                                                        padding=(1, 1)),
                             (case["input"], case["offset"]))
    nodes = [n.kind() for n in traced.graph.nodes()]
    assert "torchvision::deform_conv2d" in nodes and "aten::embedding_bag" not in nodes


def test_sparse_bottleneck_dcn_keeps_torchvision_parameters_and_results(monkeypatch):
    """conv2 is still a torchvision DeformConv2d (state dict ``conv2.weight``: checkpoints load
    unchanged; called as a module: forward hooks fire) computed by the fast op; the block's
    output and every parameter gradient equal a run on torchvision's kernel."""
    from torch import nn
    from torchvision.ops import DeformConv2d

    from seg_sparse.sampling import SparseBottleneck

    torch.manual_seed(0)
    downsample = nn.Sequential(nn.Conv2d(16, 32, 1, 2, bias=False), nn.BatchNorm2d(32))
    block = SparseBottleneck(16, 8, stride=2, downsample=downsample, with_dcn=True,
                             sampler="dense")
    nn.init.normal_(block.conv2_offset.weight, std=0.3)
    assert isinstance(block.conv2, DeformConv2d) and block.conv2.bias is None
    assert "conv2.weight" in block.state_dict() and "conv2.bias" not in block.state_dict()
    calls = []
    block.conv2.register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(2, 16, 11, 13)
    params = [p for _, p in sorted(block.named_parameters())]

    def run():
        out = block(x)
        return out, torch.autograd.grad(out.square().sum(), params)

    torchvision_calls = []
    tv_kernel = deform_conv.tv_ops.deform_conv2d
    monkeypatch.setattr(deform_conv.tv_ops, "deform_conv2d",
                        lambda *args: torchvision_calls.append(1) or tv_kernel(*args))
    out, grads = run()
    assert calls == [1] and torchvision_calls == []
    monkeypatch.setattr(deform_conv, "TORCHVISION_DEVICES", frozenset({"cpu"}))
    ref, ref_grads = run()
    assert torchvision_calls == [1]
    assert rel_err(out, ref) < 1e-5
    for a, b in zip(grads, ref_grads):
        assert rel_err(a, b) < 1e-4


def test_positions_mode_gradients_equal_the_dense_gradients_there():
    case = make_case(batch=2, stride=2, groups=2, c_out=4, modulated=True)
    b, c_out = 2, 4
    dense = deform_conv2d(**case)
    h_out, w_out = dense.shape[2:]
    positions = _positions(b * h_out * w_out, 30)
    offset_rows = case["offset"].permute(0, 2, 3, 1).reshape(-1, case["offset"].shape[1])
    mask_rows = case["mask"].permute(0, 2, 3, 1).reshape(-1, case["mask"].shape[1])
    rows = deform_conv2d_at(case["input"].permute(0, 2, 3, 1), positions, offset_rows[positions],
                            case["weight"], case["bias"], stride=2, padding=1,
                            mask=mask_rows[positions])
    grad = torch.randn(rows.shape, generator=torch.Generator().manual_seed(2))
    tensors = [case[n] for n in ("input", "offset", "weight", "bias", "mask")]
    ours = torch.autograd.grad(rows, tensors, grad)
    ref = torch.autograd.grad(dense.permute(0, 2, 3, 1).reshape(-1, c_out)[positions], tensors,
                              grad)
    for a, r in zip(ours, ref):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)
