"""Inference of sampling layers that computes only where their masks sampled.

* :mod:`.policy` -- the one place that decides how a layer runs (:func:`select_executor`):
  the masked path (training, tracing, gradients, ``'masked'``) or an
  :class:`ExecutionBackend` registered for the device, gathered below its crossover density;
* :mod:`.rows` -- the row machinery blocks and heads share (:class:`FoldCache`,
  :func:`sampled_rows`, :func:`add_sampled_affine`);
* :mod:`.block`, :mod:`.head` -- the pure-torch executors of a bottleneck block and of an
  FCN-style head, registered here as the ``'torch'`` backend (any device);
* :mod:`.triton_backend` -- the same on the Triton kernels (``'triton'``, CUDA), registered on
  the first selection for a CUDA device when triton imports (docs/gpu.md).

The executors read layers through Protocols (:class:`ExecutableBlock`, :class:`ExecutableHead`)
and never import the layer classes, so the layers depend on this package and not the other way.
"""

import torch

from .block import ExecutableBlock, fold_block, run_block
from .head import ExecutableHead, run_head
from .policy import (
    ExecutionBackend,
    Executor,
    backend_for,
    capturing_graph,
    crossover_override,
    needs_grad,
    register_backend,
    register_backend_loader,
    registered_backends,
    select_executor,
)
from .rows import FoldCache, add_sampled_affine, channels_last_rows, sampled_rows

#: The pure-torch executors, on any device. ``'auto'`` gathers a block's layer below density
#: 0.8 on CPU and a head conv below 0.4 (the head's convs read 2048-2560 channels; dense, a 3x3
#: conv of theirs runs at about twice the rate of the GEMMs a gathered one needs: 202 vs 105
#: GMAC/s on 2 CPU threads, so gathering pays only below about 0.4; docs/sparse_head.md). On
#: other devices it keeps sampling layers on the masked path: on an H100 this path took about
#: 200 ms for the paper's backbone at 512x1024 at any density, against 30-40 ms masked
#: (launch- and sync-bound; docs/benchmarks.md).
TORCH_BACKEND = ExecutionBackend(
    name="torch", run_block=run_block, run_head=run_head, device_types=frozenset({"*"}),
    crossover={"cpu": {"block": 0.8, "head": 0.4}},
)
register_backend(TORCH_BACKEND)


def load_triton_backend() -> None:
    """Register the Triton backend when triton imports and a CUDA device is there (an
    ImportError leaves the torch backend alone; the policy ignores it)."""
    if not torch.cuda.is_available():
        return
    from .triton_backend import TRITON_BACKEND  # imports triton

    register_backend(TRITON_BACKEND)


register_backend_loader("cuda", load_triton_backend)

__all__ = [
    "TORCH_BACKEND",
    "ExecutableBlock",
    "ExecutableHead",
    "ExecutionBackend",
    "Executor",
    "FoldCache",
    "add_sampled_affine",
    "backend_for",
    "capturing_graph",
    "channels_last_rows",
    "crossover_override",
    "fold_block",
    "load_triton_backend",
    "needs_grad",
    "register_backend",
    "register_backend_loader",
    "registered_backends",
    "run_block",
    "run_head",
    "sampled_rows",
    "select_executor",
]
