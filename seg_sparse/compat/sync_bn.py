"""SyncBN that also works for multi-process CPU (gloo) training.

mmseg configs use ``norm_cfg=dict(type='SyncBN')``. Single-process runs are fine: mmengine's
Runner reverts SyncBN to BN when not distributed. In a distributed CPU run torch's
``SyncBatchNorm`` refuses CPU tensors, and DDP refuses to wrap a CPU module containing one.
:class:`CPUSyncBatchNorm` (registered as 'SyncBN') all-reduces the batch statistics itself on
CPU and defers to torch on accelerators; :class:`CPUCompatibleDistributedDataParallel`
(registered model wrapper) lets DDP wrap it on CPU and drops the GPU ``device_ids`` mmengine
passes by default.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
from torch import Tensor, nn


def _needs_cpu_sync(module: nn.SyncBatchNorm, input: Tensor) -> bool:
    if not (module.training and input.device.type == "cpu"):
        return False
    if not (dist.is_available() and dist.is_initialized()):
        return False
    group = module.process_group or dist.group.WORLD
    return dist.get_world_size(group) > 1


def _channel_view(stat: Tensor, ndim: int) -> Tensor:
    return stat.view(1, -1, *([1] * (ndim - 2)))


def cpu_sync_batch_norm(module: nn.SyncBatchNorm, input: Tensor) -> Tensor:
    """Training-mode batch norm with statistics over all ranks of ``module.process_group``.

    Two differentiable all-reduces (sum and count, then the sum of squared deviations) give
    the global mean and biased variance exactly as one BN over the concatenated batch would;
    gradients flow back through the all-reduces to every rank's input. Half-precision inputs
    are normalised in float32.
    """
    import torch.distributed.nn.functional as dist_fn  # differentiable collectives

    group = module.process_group or dist.group.WORLD
    x = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
    reduce_dims = [0, *range(2, x.dim())]
    local_count = x.new_tensor([x.numel() // x.size(1)])
    first = dist_fn.all_reduce(torch.cat([x.sum(reduce_dims), local_count]), group=group)
    count = first[-1]
    if count.item() <= 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size "
            f"{list(input.shape)} on each of {dist.get_world_size(group)} ranks"
        )
    mean = first[:-1] / count
    centered = x - _channel_view(mean, x.dim())
    var = dist_fn.all_reduce(centered.pow(2).sum(reduce_dims), group=group) / count

    if module.track_running_stats and module.running_mean is not None:
        with torch.no_grad():
            module.num_batches_tracked.add_(1)
            if module.momentum is None:
                factor = 1.0 / float(module.num_batches_tracked)
            else:
                factor = module.momentum
            module.running_mean.lerp_(mean.detach().to(module.running_mean.dtype), factor)
            unbiased = var.detach() * count / (count - 1)
            module.running_var.lerp_(unbiased.to(module.running_var.dtype), factor)

    out = centered * _channel_view(torch.rsqrt(var + module.eps), x.dim())
    if module.affine:
        out = out * _channel_view(module.weight, x.dim()) + _channel_view(module.bias, x.dim())
    return out.to(input.dtype)


class CPUSyncBatchNorm(nn.SyncBatchNorm):
    """``torch.nn.SyncBatchNorm`` with a CPU path for distributed (gloo) training.

    Stays a subclass so mmengine's ``revert_sync_batchnorm`` and state dicts treat it as SyncBN.
    """

    def forward(self, input: Tensor) -> Tensor:
        if not _needs_cpu_sync(self, input):
            return super().forward(input)
        self._check_input_dim(input)
        self._check_non_zero_input_channels(input)
        return cpu_sync_batch_norm(self, input)


class CPUCompatibleDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper that also wraps CPU modules (gloo) holding CPUSyncBatchNorm.

    Use with ``model_wrapper_cfg=dict(type='CPUCompatibleDistributedDataParallel')``; on GPUs
    it behaves exactly like ``MMDistributedDataParallel``.
    """

    def __init__(self, module: nn.Module, **kwargs) -> None:
        if all(p.device.type == "cpu" for p in module.parameters()):
            kwargs.pop("device_ids", None)  # mmengine passes [LOCAL_RANK]; CPU DDP wants None
            kwargs.pop("output_device", None)
        super().__init__(module=module, **kwargs)

    def _passing_sync_batchnorm_handle(self, module: nn.Module) -> None:
        # torch refuses every SyncBatchNorm on CPU; CPUSyncBatchNorm has a CPU path.
        if self.device_type == "cpu":
            plain = [
                name for name, layer in module.named_modules()
                if isinstance(layer, nn.SyncBatchNorm) and not isinstance(layer, CPUSyncBatchNorm)
            ]
            if plain:
                raise ValueError(
                    f"torch.nn.SyncBatchNorm layers {plain[:3]} only work with GPU modules; "
                    "build them with norm_cfg=dict(type='SyncBN') after importing seg_sparse."
                )
            return
        super()._passing_sync_batchnorm_handle(module)


def register_sync_bn() -> None:
    """Make 'SyncBN' build :class:`CPUSyncBatchNorm` and register the DDP wrapper."""
    import mmcv.cnn  # noqa: F401  (registers mmcv's 'SyncBN' first, so ours overrides it)
    from mmengine.registry import MODEL_WRAPPERS, MODELS

    MODELS.register_module("SyncBN", module=CPUSyncBatchNorm, force=True)
    MODEL_WRAPPERS.register_module(module=CPUCompatibleDistributedDataParallel, force=True)
