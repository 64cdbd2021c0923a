"""Rows of ``seg-sparse bench --compile``: eager vs ``torch.compile``, dense twin vs sampled.

Four models run in turn within each round (one process, medians over rounds): the dense twin
and the sampling model, each eager and compiled (:func:`seg_sparse.apis.compile_model`), for

* ``training``: one SGD step (forward with the losses, backward, update) at the training crop
  and batch, as ``--train`` times it;
* ``masked inference``: the whole segmentor's logits at the training crop, batch 1, the
  sampling model on its masked path (what compiles; its eager ``auto`` path is the ``sparse``
  column of the inference table), the dense twin eager on its fastest path.

Compilation happens in an untimed first call of each compiled model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from seg_sparse.sampling import execution_mode

from .timing import alternated_medians
from .training import _batch, training_step

VARIANTS = ("dense eager", "dense compiled", "sampled eager", "sampled compiled")


@dataclass
class CompileRow:
    """Median milliseconds of one kind of run, four ways."""

    part: str  # 'compile: training' or 'compile: masked inference'
    input: str
    batch: int
    dense_eager_ms: float
    dense_compiled_ms: float
    sampled_eager_ms: float
    sampled_compiled_ms: float
    device: str
    threads: int
    backend: str

    @property
    def eager_ratio(self) -> float:
        """Sampled / dense time, eager."""
        return self.sampled_eager_ms / self.dense_eager_ms

    @property
    def compiled_ratio(self) -> float:
        """Sampled / dense time, both compiled (the CPU target: <= 1.15 in training)."""
        return self.sampled_compiled_ms / self.dense_compiled_ms

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row.update(eager_ratio=self.eager_ratio, compiled_ratio=self.compiled_ratio,
                   density=None, speedup=None, flops_ratio=None, realization=None)
        return row


def _compiled_copy(model: nn.Module, options: dict[str, Any]) -> nn.Module:
    from seg_sparse.apis import compile_model

    compiled = copy.deepcopy(model)
    compile_model(compiled, **options)
    return compiled


def _inference(model: nn.Module, x: torch.Tensor, execution: str) -> Callable[[], Any]:
    metas = [dict(img_shape=tuple(x.shape[-2:]), ori_shape=tuple(x.shape[-2:]))]

    def run() -> Any:
        with torch.no_grad(), execution_mode(model, execution):
            return model.encode_decode(x, metas)

    return run


def benchmark_compile(
    sparse_model: nn.Module, dense_model: nn.Module, sparse_train: nn.Module,
    dense_train: nn.Module, crop: tuple[int, int], batch: int, num_classes: int,
    repeats: int = 3, warmup: int = 0, options: dict[str, Any] | None = None,
) -> list[CompileRow]:
    """Training-step and masked-inference rows (eval models ``sparse_model`` /
    ``dense_model``, train models ``*_train``; compiled copies are made here)."""
    options = dict(options or {})
    device = next(sparse_model.parameters()).device
    backend = str(options.get("backend", "inductor"))
    inputs, samples = _batch(crop, batch, num_classes, device)
    train = {"dense eager": dense_train, "dense compiled": _compiled_copy(dense_train, options),
             "sampled eager": sparse_train,
             "sampled compiled": _compiled_copy(sparse_train, options)}
    steps = {name: training_step(model, inputs, samples) for name, model in train.items()}
    torch.manual_seed(0)
    x = torch.randn(1, 3, *crop, device=device)
    runs = {"dense eager": _inference(dense_model, x, "auto"),
            "dense compiled": _inference(_compiled_copy(dense_model, options), x, "auto"),
            "sampled eager": _inference(sparse_model, x, "masked"),
            "sampled compiled": _inference(_compiled_copy(sparse_model, options), x,
                                           "masked")}
    rows = []
    for part, fns, size in (("compile: training", steps, batch),
                            ("compile: masked inference", runs, 1)):
        for fn in fns.values():  # compiles
            fn()
        ms = alternated_medians(fns, repeats, warmup, device)
        rows.append(CompileRow(part, f"{crop[0]}x{crop[1]}", size, *(ms[v] for v in VARIANTS),
                               device=str(device), threads=torch.get_num_threads(),
                               backend=backend))
    return rows


def format_compile(rows: list[CompileRow]) -> str:
    from seg_sparse.outputs import table

    header = ["run", "input", "batch", *(f"{v} ms" for v in VARIANTS), "sampled/dense eager",
              "sampled/dense compiled"]
    body = [[r.part, r.input, r.batch, f"{r.dense_eager_ms:.0f}", f"{r.dense_compiled_ms:.0f}",
             f"{r.sampled_eager_ms:.0f}", f"{r.sampled_compiled_ms:.0f}",
             f"{r.eager_ratio:.2f}x", f"{r.compiled_ratio:.2f}x"] for r in rows]
    return table(header, body)
