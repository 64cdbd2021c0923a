"""The Triton backend (blocks and sampled heads) equals the masked path for the same masks,
runs without host syncs, follows autocast, and registers for CUDA. On CPU in Triton's
interpreter: the backend is registered for the test device ahead of the torch one."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("triton")

import torch  # noqa: E402
from sampling_reference import drawn_mask, make_block  # noqa: E402
from test_sampling_execution import BLOCKS, DENSITIES, output_hw  # noqa: E402
from triton_support import DEVICE, NoHostSync, interpreted, max_rel_err  # noqa: E402, F401

from seg_sparse.sampling import execution_mode  # noqa: E402
from seg_sparse.sampling.execution import policy  # noqa: E402

pytestmark = pytest.mark.usefixtures("interpreted")
H, W = 9, 12


def backend_module():
    import seg_sparse.sampling.execution.triton_backend as backend

    return backend


@pytest.fixture
def triton_here(monkeypatch):
    """The Triton backend registered for the test device, ahead of the torch backend; yields
    the list of layer kinds it ran."""
    triton, ran = backend_module(), []

    def run_block(*args):
        ran.append("block")
        return triton.run_block(*args)

    def run_head(*args):
        ran.append("head")
        return triton.run_head(*args)

    backend = dataclasses.replace(triton.TRITON_BACKEND, name="triton-test", run_block=run_block,
                                  run_head=run_head, device_types=frozenset({DEVICE.type}),
                                  priority=100)
    monkeypatch.setitem(policy._BACKENDS, backend.name, backend)
    return ran


def block_with_masks(kind, density, batch, seed=0, sampler="stochastic"):
    block = make_block(sampler, **BLOCKS[kind]).eval().to(DEVICE)
    generator = torch.Generator().manual_seed(seed)
    p, grid = DENSITIES[density]
    shapes = ((batch, 1, H, W), (batch, 1, *output_hw(H, W, block.stride)))
    block.mask_override = tuple(drawn_mask(s, p, grid, generator).to(DEVICE) for s in shapes)
    x = torch.randn(batch, 16, H, W, generator=generator).to(DEVICE)
    return block, x


def masked_and(block, x, mode="sparse"):
    with torch.no_grad():
        with execution_mode(block, "masked"):
            expected = block(x)
        with execution_mode(block, mode):
            got = block(x)
    return got, expected


#: every block kind at every density, batch 1 and 4 alternating so that each kind and each
#: density meets both
CASES = [(kind, density, (1, 4)[(i + j) % 2]) for i, kind in enumerate(BLOCKS)
         for j, density in enumerate(DENSITIES)]


@pytest.mark.parametrize(("kind", "density", "batch"), CASES)
def test_block_equals_the_masked_path(kind, density, batch, triton_here):
    block, x = block_with_masks(kind, density, batch)
    got, expected = masked_and(block, x)
    assert triton_here == ["block"]
    assert got.shape == expected.shape
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert max_rel_err(got, expected) < 1e-4


@pytest.mark.parametrize("gather_below", [0.0, 0.5])
@pytest.mark.parametrize("kind", ["first-downsample-stride2", "resnext-groups-dcn"])
def test_full_map_layers_equal_the_masked_path(kind, gather_below):
    """Below the crossover gathered, above it on the full map (0: every layer)."""
    block, x = block_with_masks(kind, "0.9", 2)
    m1 = block.mask_override[0]
    m2 = block.mask_override[1].clone()
    m2[0] = drawn_mask(m2[:1].shape, 0.3, 3, torch.Generator().manual_seed(1)).to(DEVICE)
    block.mask_override = (m1, m2)  # m1 at 0.9, m2 at about 0.3 + the grid
    with torch.no_grad(), execution_mode(block, "masked"):
        expected = block(x)
    got = backend_module().run_block(block, x.contiguous(memory_format=torch.channels_last),
                                     m1, m2, gather_below)
    assert max_rel_err(got, expected) < 1e-4


@pytest.mark.usefixtures("triton_here")
@pytest.mark.parametrize("kind", ["first-downsample-stride2", "dilated-dcn"])
def test_soft_masks_weight_the_computed_positions_as_the_masked_path(kind):
    block, x = block_with_masks(kind, "0.3", 2, sampler="relu")
    g = torch.Generator().manual_seed(2)
    block.mask_override = tuple((m * torch.rand(m.shape, generator=g).to(DEVICE))
                                for m in block.mask_override)
    got, expected = masked_and(block, x)
    assert max_rel_err(got, expected) < 1e-4


@pytest.mark.usefixtures("triton_here")
def test_folded_weights_follow_loaded_weights():
    block, x = block_with_masks("dcn-stride2", "0.3", 1)
    before, _ = masked_and(block, x)
    other = make_block("stochastic", seed=7, **BLOCKS["dcn-stride2"]).to(DEVICE)
    block.load_state_dict(other.state_dict())
    after, expected = masked_and(block, x)
    assert not torch.allclose(after, before)
    assert max_rel_err(after, expected) < 1e-4


@pytest.mark.usefixtures("triton_here")
@pytest.mark.parametrize("kind", ["first-downsample-stride2", "dilated-dcn", "resnext-groups"])
def test_a_block_runs_without_host_syncs(kind):
    """Masks drawn by the block itself (sampler + grid prior), then the kernels: nothing reads
    a device value on the host, so a CUDA graph can capture the block."""
    block, x = block_with_masks(kind, "0.3", 2)
    block.mask_override = None
    block.set_generator(torch.Generator(device=DEVICE).manual_seed(0))
    with torch.no_grad(), execution_mode(block, "sparse"):
        block(x)  # folds the weights (reads the interpolation taps once)
        with NoHostSync():
            out = block(x)
    assert out.shape == (2, 16, *output_hw(H, W, block.stride))


def test_the_host_sync_check_catches_the_torch_backends_nonzero():
    block, x = block_with_masks("plain-3x3", "0.3", 1)
    with torch.no_grad(), execution_mode(block, "sparse"), pytest.raises(
            AssertionError, match="host sync: aten.nonzero"), NoHostSync():
        block(x)  # the torch backend (no Triton registered for this device here)


@pytest.mark.usefixtures("triton_here")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs_the_kernels_in_its_dtype_within_its_tolerance(dtype):
    if DEVICE.type == "cpu" and dtype == torch.float16:
        pytest.skip("CPU autocast runs bfloat16 only")
    block, x = block_with_masks("dcn-stride2", "0.3", 2)
    with torch.no_grad(), execution_mode(block, "masked"):
        reference = block(x)
    with torch.no_grad(), torch.autocast(DEVICE.type, dtype=dtype):
        got, masked = masked_and(block, x)
    assert got.dtype == dtype
    tolerance = 3e-2 if dtype == torch.bfloat16 else 4e-3
    assert max_rel_err(got, reference) < tolerance
    assert max_rel_err(got, masked) < tolerance


def test_half_inputs_without_autocast_compute_in_their_dtype():
    block, x = block_with_masks("resnext-groups", "0.3", 1)
    m1, m2 = block.mask_override
    with torch.no_grad(), execution_mode(block, "masked"):
        expected = block(x)
    half = x.half().contiguous(memory_format=torch.channels_last)
    got = backend_module().run_block(block, half, m1, m2, 2.0)
    assert got.dtype == torch.float16
    assert max_rel_err(got, expected) < 4e-3


def test_the_loader_registers_triton_for_cuda_and_auto_waits_for_a_measured_crossover(
        monkeypatch):
    from seg_sparse.sampling.execution import load_triton_backend

    monkeypatch.setattr(policy, "_BACKENDS", dict(policy._BACKENDS))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    load_triton_backend()
    cuda = torch.device("cuda")
    assert policy.backend_for("cuda").name == "triton"
    assert policy.backend_for("cpu").name == "torch"
    sparse = policy.select_executor("sparse", False, True, cuda)
    assert sparse.backend.name == "triton" and sparse.gather_below > 1
    # no crossover measured on a GPU yet: 'auto' keeps sampling layers masked on CUDA
    assert backend_module().CUDA_CROSSOVER == {"block": None, "head": None}
    assert policy.select_executor("auto", False, True, cuda) is None
    dense = policy.select_executor("auto", False, False, cuda)
    assert dense.backend.name == "triton" and dense.gather_below == 0.0


def test_without_cuda_the_loader_registers_nothing(monkeypatch):
    from seg_sparse.sampling.execution import load_triton_backend

    monkeypatch.setattr(policy, "_BACKENDS", dict(policy._BACKENDS))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    load_triton_backend()
    assert "triton" not in policy._BACKENDS


# -- the sampled decode head -----------------------------------------------------------------
def _head_cases():
    from test_sparse_head import DENSITIES as HEAD_DENSITIES
    from test_sparse_head import LAYOUTS

    return [(layout, density, (1, 3)[(i + j) % 2]) for i, layout in enumerate(LAYOUTS)
            for j, density in enumerate(HEAD_DENSITIES)]


@pytest.mark.parametrize(("layout", "density", "batch"), _head_cases())
def test_head_equals_the_masked_head(layout, density, batch, triton_here):
    from test_sparse_head import DENSITIES as HEAD_DENSITIES
    from test_sparse_head import LAYOUTS, drawn_masks, make_head

    head = make_head(**LAYOUTS[layout]).to(DEVICE)
    x = torch.randn(batch, head.in_channels, 7, 9, generator=torch.Generator().manual_seed(0))
    p, grid = HEAD_DENSITIES[density]
    head.sampling.mask_override = tuple(
        m.to(DEVICE) for m in drawn_masks(head.sampling.num_layers, (batch, 1, 7, 9), p, grid))
    with torch.no_grad():
        with execution_mode(head, "masked"):
            expected = head([x.to(DEVICE)])
        with execution_mode(head, "sparse"):
            got = head([x.to(DEVICE)])
    assert triton_here == ["head"]
    assert got.shape == expected.shape
    assert max_rel_err(got, expected) < 1e-4


@pytest.mark.parametrize("gather_below", [0.0, 0.5])
def test_head_convs_above_the_crossover_run_on_the_full_map(gather_below):
    from test_sparse_head import make_head

    head = make_head("relu", num_convs=2, concat_input=True).to(DEVICE)
    x = torch.randn(2, head.in_channels, 7, 9, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(1)
    soft = [(torch.rand(2, 1, 7, 9, generator=g) * 2 - 0.8).clamp(0, 1) for _ in range(3)]
    soft[1] = soft[1] * (torch.rand(2, 1, 7, 9, generator=g) < 0.3)  # one sparse conv
    head.sampling.mask_override = tuple(m.to(DEVICE) for m in soft)
    with torch.no_grad(), execution_mode(head, "masked"):
        expected = head([x.to(DEVICE)])
    backend = backend_module()
    calls, real = [], backend._gathered
    with pytest.MonkeyPatch.context() as monkey:
        monkey.setattr(backend, "_gathered",
                       lambda *args: calls.append(real(*args)) or calls[-1])
        with torch.no_grad():
            got = backend.run_head(head.sampling, head.head_layers(), x.to(DEVICE), head,
                                   gather_below)
    assert calls == ([False] * 3 if gather_below == 0 else [False, True, False])
    assert max_rel_err(got, expected) < 1e-4


def test_a_sampled_head_runs_without_host_syncs(triton_here):
    from test_sparse_head import make_head

    head = make_head(num_convs=2, concat_input=True).to(DEVICE)
    x = torch.randn(2, head.in_channels, 7, 9).to(DEVICE)
    head.sampling.set_generator(torch.Generator(device=DEVICE).manual_seed(0))
    with torch.no_grad(), execution_mode(head, "sparse"):
        head([x])  # folds the weights
        with NoHostSync():
            logits = head([x])
    assert triton_here == ["head", "head"] and logits.shape == (2, 5, 7, 9)


def test_a_measured_crossover_makes_auto_pick_triton_below_it(monkeypatch):
    backend = backend_module()
    monkeypatch.setitem(backend.CUDA_CROSSOVER, "block", 0.6)
    crossover = backend._crossover()
    assert crossover == {"cuda": {"block": 0.6}}  # the head's is still unmeasured
    measured = dataclasses.replace(backend.TRITON_BACKEND, crossover=crossover)
    monkeypatch.setattr(policy, "_BACKENDS", {**policy._BACKENDS, "triton": measured})
    monkeypatch.setattr(policy, "_LOADERS", {})
    block = policy.select_executor("auto", False, True, torch.device("cuda"))
    assert block.backend.name == "triton" and block.gather_below == 0.6
    head = policy.select_executor("auto", False, True, torch.device("cuda"), kind="head")
    assert head.gather_below == 0.0  # on the full map (the masked computation, folded)
