"""Replay a forward from one CUDA graph: the launch overhead of a sync-free forward, paid once.

The Triton backend runs a sampling block without reading anything back to the host (positions
in fixed-capacity buffers, counts on the device), so a block, a backbone or a whole segmentor
in ``execution='sparse'`` can be captured once per input shape and replayed: one graph launch
instead of a dozen kernel launches per block. Capture fails for a forward that synchronises:
the torch backend (``nonzero`` per mask), the masked path (its interpolation checks for an
all-ones mask), ``'auto'`` with a crossover strictly between 0 and 1 (the Triton backend reads
the mask counts to choose). Random draws use the default CUDA generator, which graphs support
(torch advances its offset at every replay, so every replay draws new masks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class GraphedForward:
    """``fn(x)`` captured in one CUDA graph for inputs of ``example``'s shape and dtype.

    Each call copies ``x`` into the graph's input buffer and replays; the result is the graph's
    own output (the same tensors every call, overwritten by the next call: clone to keep one).
    ``warmup`` eager runs on a side stream come first (Triton compiles its kernels there,
    weights are folded, the allocator settles).
    """

    def __init__(self, fn: Callable[[torch.Tensor], Any], example: torch.Tensor,
                 warmup: int = 2) -> None:
        if example.device.type != "cuda":
            raise ValueError(f"CUDA graphs need an input on a CUDA device, got "
                             f"{example.device}")
        if warmup < 1:
            raise ValueError(f"warmup must be >= 1 (Triton compiles its kernels there), got "
                             f"{warmup}")
        self.fn = fn
        self.input = example.clone()
        side = torch.cuda.Stream(example.device)
        side.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                fn(self.input)
        torch.cuda.current_stream(example.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(self.graph):
                self.output = fn(self.input)
        except RuntimeError as error:
            raise RuntimeError(
                "CUDA graph capture failed: the forward reads a device value on the host (run "
                "sampling layers with execution='sparse' on the Triton backend; the masked "
                f"path and the torch backend synchronise): {error}") from error

    def __call__(self, x: torch.Tensor) -> Any:
        if x.shape != self.input.shape or x.dtype != self.input.dtype:
            raise ValueError(f"this graph was captured for {tuple(self.input.shape)} "
                             f"{self.input.dtype} inputs, got {tuple(x.shape)} {x.dtype}")
        self.input.copy_(x)
        self.graph.replay()
        return self.output
