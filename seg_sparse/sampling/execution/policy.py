"""Which path a sampling layer runs at inference: the one place that decides.

Training, tracing, compiling, exporting and any call that needs gradients run the *masked*
path (the training computation, the reference). Otherwise a layer with ``execution`` 'sparse'
or 'auto' runs an :class:`ExecutionBackend`: code that computes only where the masks sampled.
Backends are registered per device type (:func:`register_backend`); the pure-torch one
(``'torch'``, any device) is always there, faster ones (Triton on CUDA) register themselves
when their dependencies import. A backend says, per device type and layer kind, below which
density ``'auto'`` gathers a layer (the crossover ``seg-sparse bench --crossover`` measures);
on a device it has no crossover for, ``'auto'`` keeps sampling layers on the masked path (the
pure-torch gather path on CUDA is launch- and sync-bound, docs/benchmarks.md), and layers of
the ``dense`` sampler still run folded and channels-last. ``'sparse'`` always gathers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch

LayerKind = Literal["block", "head"]


class BlockRunner(Protocol):
    def __call__(self, block: Any, x: torch.Tensor, mask1: torch.Tensor | None,
                 mask2: torch.Tensor | None, gather_below: float) -> torch.Tensor: ...


class HeadRunner(Protocol):
    def __call__(self, sampling: Any, layers: Any, x: torch.Tensor, owner: torch.nn.Module,
                 gather_below: float) -> torch.Tensor: ...


@dataclass(frozen=True)
class ExecutionBackend:
    """Code that runs a sampling layer computing only at its sampled positions.

    ``run_block(block, x, mask1, mask2, gather_below)``: a bottleneck block's output
    (channels-last (B, 4P, H2, W2)) from its channels-last input and masks (None: all ones);
    ``run_head(sampling, layers, x, owner, gather_below)``: a sampled head's logits.
    ``crossover[device_type][kind]``: in ``'auto'``, a layer of that kind is gathered below
    this density and run on the full map above it. ``device_types``: where the backend runs
    (``'*'``: anywhere). Among the backends of a device the highest ``priority`` wins.
    """

    name: str
    run_block: BlockRunner
    run_head: HeadRunner
    device_types: frozenset[str] = frozenset({"*"})
    crossover: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    priority: int = 0

    def runs_on(self, device_type: str) -> bool:
        return "*" in self.device_types or device_type in self.device_types


@dataclass(frozen=True)
class Executor:
    """A backend bound to the density under which it gathers (2.0: always)."""

    backend: ExecutionBackend
    gather_below: float

    def run_block(self, block: Any, x: torch.Tensor, mask1: torch.Tensor | None,
                  mask2: torch.Tensor | None) -> torch.Tensor:
        return self.backend.run_block(block, x, mask1, mask2, self.gather_below)

    def run_head(self, sampling: Any, layers: Any, x: torch.Tensor,
                 owner: torch.nn.Module) -> torch.Tensor:
        return self.backend.run_head(sampling, layers, x, owner, self.gather_below)


_BACKENDS: dict[str, ExecutionBackend] = {}
#: device type -> loaders run once, on the first selection for that device (a backend whose
#: import is costly or may fail, e.g. Triton, registers itself from there)
_LOADERS: dict[str, list[Callable[[], None]]] = {}
_gather_override: float | None = None


def register_backend(backend: ExecutionBackend) -> None:
    """Make ``backend`` available (replacing one of the same name)."""
    _BACKENDS[backend.name] = backend


def register_backend_loader(device_type: str, loader: Callable[[], None]) -> None:
    """Run ``loader`` (which may call :func:`register_backend`) before the first selection
    for ``device_type``; an ImportError in it leaves the other backends in place."""
    _LOADERS.setdefault(device_type, []).append(loader)


def registered_backends() -> dict[str, ExecutionBackend]:
    """Name -> backend, for reports and tests."""
    return dict(_BACKENDS)


def backend_for(device_type: str, name: str | None = None) -> ExecutionBackend:
    """The backend that runs on ``device_type``: ``name``'s, or the highest priority one."""
    for loader in _LOADERS.pop(device_type, []):
        try:
            loader()
        except ImportError:
            pass
    if name is not None:
        backend = _BACKENDS.get(name)
        if backend is None or not backend.runs_on(device_type):
            raise ValueError(f"no execution backend {name!r} for device type {device_type!r}; "
                             f"registered: {sorted(_BACKENDS)}")
        return backend
    candidates = [b for b in _BACKENDS.values() if b.runs_on(device_type)]
    if not candidates:
        raise RuntimeError(f"no execution backend runs on device type {device_type!r}")
    return max(candidates, key=lambda b: b.priority)


def capturing_graph() -> bool:
    """Whether the current call is being traced, compiled or exported (data-dependent
    shapes and host reads are not allowed: the masked path runs)."""
    return bool(torch.jit.is_tracing() or torch.compiler.is_compiling()
                or torch.compiler.is_exporting())


def needs_grad(module: torch.nn.Module, x: torch.Tensor) -> bool:
    """Whether autograd would record this call (the executors compute without a graph)."""
    if not torch.is_grad_enabled():
        return False
    return x.requires_grad or any(p.requires_grad for p in module.parameters())


def select_executor(mode: str, training: bool, sampling: bool, device: torch.device,
                    kind: LayerKind = "block", grad: bool = False) -> Executor | None:
    """How a layer runs: an :class:`Executor`, or None for the masked path.

    ``sampling``: the layer samples (not the ``dense`` sampler); ``grad``: the call needs
    gradients (:func:`needs_grad`).
    """
    if training or mode == "masked" or grad or capturing_graph():
        return None
    backend = backend_for(device.type)
    if mode == "sparse":
        return Executor(backend, 2.0)
    crossover = backend.crossover.get(device.type)
    if crossover is None:
        if sampling:
            return None
        return Executor(backend, 0.0)  # dense layer: folded, on the full map
    if _gather_override is not None:
        return Executor(backend, _gather_override)
    return Executor(backend, crossover.get(kind, 0.0))


@contextmanager
def crossover_override(density: float) -> Iterator[None]:
    """Temporarily gather under ``density`` in ``'auto'`` (0: never), for benchmarks."""
    global _gather_override
    saved, _gather_override = _gather_override, float(density)
    try:
        yield
    finally:
        _gather_override = saved
