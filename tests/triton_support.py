"""The Triton kernels for the tests: on a CUDA device when there is one, else on CPU tensors in
Triton's interpreter (``TRITON_INTERPRET=1``, set only while a module using this runs: the
interpreter is chosen when the kernels are defined and checked again while they run)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(scope="module")
def interpreted() -> Iterator[None]:
    """Kernels run interpreted on CPU (natively on CUDA) while the module's tests run."""
    pytest.importorskip("triton")
    saved = os.environ.get("TRITON_INTERPRET")
    if DEVICE.type == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    try:
        importlib.import_module("seg_sparse.ops.triton")
        yield
    finally:
        if saved is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = saved


def max_rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


class NoHostSync(TorchDispatchMode):
    """Fails on every operation that reads a device value on the host (what a CUDA graph
    cannot capture)."""

    SYNCING = ("aten._local_scalar_dense", "aten.nonzero", "aten.is_nonzero", "aten.item",
               "aten.masked_select", "aten.equal", "aten.unique")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func).startswith(self.SYNCING):
            raise AssertionError(f"host sync: {func}")
        return func(*args, **(kwargs or {}))
