"""CPU SyncBN: two gloo processes behave like one BN over the concatenated batch."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmcv.cnn import build_norm_layer
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS
from torch import nn

import seg_sparse  # noqa: F401  (registers 'SyncBN')
from seg_sparse.compat import CPUCompatibleDistributedDataParallel, CPUSyncBatchNorm

WORLD_SIZE = 2
CHANNELS = 3
STEPS = 2


def make_batches() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(4, CHANNELS, 5, 6, generator=generator) * 3 + 1 for _ in range(STEPS)]


def make_affine_params() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    weight = torch.rand(CHANNELS, generator=generator) + 0.5
    bias = torch.randn(CHANNELS, generator=generator)
    upstream = torch.randn(4, CHANNELS, 5, 6, generator=generator)  # d loss / d output
    return weight, bias, upstream


def run_steps(layer: nn.Module, batches, rows: slice):
    """Forward/backward STEPS batches (each rank its rows); returns outputs and input grads."""
    _, _, upstream = make_affine_params()
    outputs, grads = [], []
    for batch in batches:
        x = batch[rows].clone().requires_grad_()
        out = layer(x)
        (out * upstream[rows]).sum().backward()
        outputs.append(out.detach())
        grads.append(x.grad)
    return outputs, grads


def _worker(rank: int, init_file: str, result_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE
    )
    try:
        layer = build_norm_layer(dict(type="SyncBN", momentum=0.3), CHANNELS)[1]
        assert type(layer) is CPUSyncBatchNorm
        weight, bias, _ = make_affine_params()
        with torch.no_grad():
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
        rows = slice(rank * 2, rank * 2 + 2)
        outputs, grads = run_steps(layer, make_batches(), rows)

        # mmengine's DDP wrapper path on CPU (device_ids as mmengine passes them).
        norm = build_norm_layer(dict(type="SyncBN"), 4)[1]
        model = nn.Sequential(nn.Conv2d(CHANNELS, 4, 1), norm)
        wrapper_cls = MODEL_WRAPPERS.get("CPUCompatibleDistributedDataParallel")
        ddp = wrapper_cls(module=model, device_ids=[rank], broadcast_buffers=False)
        ddp(make_batches()[0][rows]).square().mean().backward()
        torch.save(
            {
                "outputs": outputs,
                "grads": grads,
                "state": layer.state_dict(),
                "weight_grad": layer.weight.grad,
                "bias_grad": layer.bias.grad,
                "ddp_state": model.state_dict(),
                "ddp_conv_grad": model[0].weight.grad,
            },
            os.path.join(result_dir, f"rank{rank}.pth"),
        )
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("syncbn")
    mp.spawn(_worker, args=(str(tmp / "store"), str(tmp)), nprocs=WORLD_SIZE, join=True)
    return [torch.load(tmp / f"rank{r}.pth", weights_only=True) for r in range(WORLD_SIZE)]


def test_running_stats_equal_across_ranks_and_to_bn_over_the_full_batch(rank_results):
    reference = nn.BatchNorm2d(CHANNELS, momentum=0.3)
    weight, bias, _ = make_affine_params()
    with torch.no_grad():
        reference.weight.copy_(weight)
        reference.bias.copy_(bias)
    outputs, grads = run_steps(reference, make_batches(), slice(None))

    for key in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(rank_results[0]["state"][key], rank_results[1]["state"][key])
        torch.testing.assert_close(rank_results[0]["state"][key], reference.state_dict()[key])
    for step in range(STEPS):
        torch.testing.assert_close(
            torch.cat([r["outputs"][step] for r in rank_results]), outputs[step]
        )
        torch.testing.assert_close(torch.cat([r["grads"][step] for r in rank_results]), grads[step])
    # without DDP each rank holds the gradient of its own rows; together they are the full one
    torch.testing.assert_close(sum(r["weight_grad"] for r in rank_results), reference.weight.grad)
    torch.testing.assert_close(sum(r["bias_grad"] for r in rank_results), reference.bias.grad)


def test_cpu_ddp_wrapper_trains_with_synced_bn(rank_results):
    first, second = (r["ddp_state"] for r in rank_results)
    for key in first:
        torch.testing.assert_close(first[key], second[key], msg=key)
    torch.testing.assert_close(rank_results[0]["ddp_conv_grad"], rank_results[1]["ddp_conv_grad"])


def test_single_process_reverts_to_batchnorm_and_keeps_state():
    layer = build_norm_layer(dict(type="SyncBN"), CHANNELS)[1]
    layer.train()
    layer(torch.randn(2, CHANNELS, 4, 4))  # not distributed: torch's plain BN path
    reverted = revert_sync_batchnorm(nn.Sequential(layer))[0]
    assert not isinstance(reverted, nn.SyncBatchNorm)
    assert reverted.state_dict().keys() == layer.state_dict().keys()
    torch.testing.assert_close(reverted.running_mean, layer.running_mean)


def test_cpu_ddp_wrapper_is_registered():
    assert MODEL_WRAPPERS.get("CPUCompatibleDistributedDataParallel") is (
        CPUCompatibleDistributedDataParallel
    )
