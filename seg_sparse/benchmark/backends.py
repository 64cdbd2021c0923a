"""The inference backends side by side (``seg-sparse bench --backends``, ``seg-sparse gpu-check``).

For each input size, part, precision and mask density, alternated in one process, medians:

* ``dense``: the dense twin on its fastest path;
* ``masked``: the sampling model's training computation (eager);
* ``compiled``: the same under ``torch.compile`` (one compile per size, part and precision);
* ``sparse``: ``execution='sparse'``: every sampled layer gathered, by the backend the policy
  picks for the device (Triton on CUDA when it imports, else torch; named in ``backend``);
* ``graph``: ``sparse`` replayed from one CUDA graph (CUDA only; the Triton path is sync-free);
* ``auto``: ``execution='auto'``, what a user gets.

Precisions: ``default`` (torch's defaults: cuDNN convolutions in TF32, matmuls and the Triton
kernels' dots in IEEE float32), ``fp32`` (no TF32 anywhere), ``tf32`` (matmuls and dots in
TF32 too), ``bf16`` (``torch.autocast`` in bfloat16; the kernels accumulate in float32).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from seg_sparse.flops import count_flops
from seg_sparse.sampling import execution_mode
from seg_sparse.sampling.execution import backend_for

from .density_masks import HeadMasks, Masks, overridden_head_masks, overridden_masks
from .inference import _flops_ratio, _forward, _mask_sets, _runner
from .timing import alternated_medians, sync_device

PRECISIONS = ("default", "fp32", "tf32", "bf16")
#: Seconds a case needs left in a time budget to start: without / with a torch.compile.
CASE_S = 60.0
COMPILE_CASE_S = 180.0
COLUMNS = ("dense", "masked", "compiled", "sparse", "graph", "auto")


@contextmanager
def precision(name: str, device: torch.device) -> Iterator[None]:
    """Run under one of :data:`PRECISIONS` (restores torch's settings after)."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = name == "tf32"
        torch.backends.cudnn.allow_tf32 = name in ("default", "tf32", "bf16")
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=name == "bf16"):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@dataclass
class BackendRow:
    """One line of the backends table (times in ms; None: not run)."""

    input: str
    part: str
    precision: str
    density: float | str
    dense_ms: float
    masked_ms: float
    compiled_ms: float | None
    sparse_ms: float
    graph_ms: float | None
    auto_ms: float
    backend: str  # what ran 'sparse' (and 'graph')
    speedup: float  # dense / the fastest sampled path
    flops_ratio: float
    realization: float
    device: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Deadline:
    """Seconds left of a time budget (None: unlimited), for phases that may be skipped."""

    seconds: float | None
    start: float = 0.0

    def __post_init__(self) -> None:
        self.start = time.perf_counter()

    def left(self) -> float:
        if self.seconds is None:
            return float("inf")
        return self.seconds - (time.perf_counter() - self.start)

    def allows(self, cost: float) -> bool:
        return self.left() >= cost


def _in_precision(fn: Callable[[], Any], name: str, device: torch.device) -> Callable[[], Any]:
    def run() -> Any:
        with precision(name, device):
            return fn()
    return run


@contextmanager
def _sampling(model: nn.Module, execution: str, masks: Masks,
              head: HeadMasks) -> Iterator[None]:
    with ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        stack.enter_context(execution_mode(model, execution))
        stack.enter_context(overridden_masks(model.backbone, masks))
        stack.enter_context(overridden_head_masks(model, head))
        yield


def _compiled_runner(model: nn.Module, part: str, x: torch.Tensor, masks: Masks,
                     head: HeadMasks, compile_backend: str) -> Callable[[], Any]:
    """The masked path under ``torch.compile`` (the module is compiled, the masks and mode
    set around each call as for the eager runs)."""
    compiled = torch.compile(model.backbone if part == "backbone" else model.encode_decode,
                             backend=compile_backend)
    metas = [dict(img_shape=tuple(x.shape[-2:]), ori_shape=tuple(x.shape[-2:]))]

    def run() -> Any:
        with _sampling(model, "masked", masks, head):
            return compiled(x) if part == "backbone" else compiled(x, metas)

    return run


def graphed_runner(model: nn.Module, part: str, x: torch.Tensor, masks: Masks,
                   head: HeadMasks) -> Callable[[], Any]:
    """``execution='sparse'`` captured in one CUDA graph (raises where capture fails)."""
    from seg_sparse.sampling.execution.cuda_graph import GraphedForward

    metas = [dict(img_shape=tuple(x.shape[-2:]), ori_shape=tuple(x.shape[-2:]))]

    def forward(inp: torch.Tensor) -> Any:
        return model.backbone(inp) if part == "backbone" else model.encode_decode(inp, metas)

    with _sampling(model, "sparse", masks, head):  # the captured kernels keep these masks
        graphed = GraphedForward(forward, x)
    return lambda: graphed(x)


def _case_runs(sparse_model: nn.Module, dense_model: nn.Module, part: str, x: torch.Tensor,
               mask_sets: dict, name: str, compile_backend: str | None, graphs: bool,
               notes: list[str]) -> dict[str, Callable[[], Any]]:
    """The timed runs of one input, part and precision; each run once untimed (Triton JIT,
    weight folding, compilation, graph capture)."""
    device = x.device
    fns = {"dense": _runner(dense_model, part, x, None, "auto")}
    compiled_ok = compile_backend is not None
    for key, (masks, head) in mask_sets.items():
        fns[f"masked@{key}"] = _runner(sparse_model, part, x, masks, "masked", head_masks=head)
        fns[f"sparse@{key}"] = _runner(sparse_model, part, x, masks, "sparse", head_masks=head)
        fns[f"auto@{key}"] = _runner(sparse_model, part, x, masks, "auto", head_masks=head)
        if compiled_ok:
            fns[f"compiled@{key}"] = _compiled_runner(sparse_model, part, x, masks, head,
                                                      compile_backend)
    fns = {k: _in_precision(fn, name, device) for k, fn in fns.items()}
    for key in list(fns):
        try:
            fns[key]()
        except Exception as error:  # noqa: BLE001 -- a failed compile is a result too
            if not key.startswith("compiled@"):
                raise
            notes.append(f"compiled masked ({part}, {name}) failed: "
                         f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")
            fns = {k: v for k, v in fns.items() if not k.startswith("compiled@")}
            break
    if graphs:
        for key, (masks, head) in mask_sets.items():
            try:
                with precision(name, device):
                    fns[f"graph@{key}"] = graphed_runner(sparse_model, part, x, masks, head)
            except RuntimeError as error:
                notes.append(f"CUDA graph ({part}, {name}, density {key}) failed: "
                             f"{str(error).splitlines()[0][:200]}")
                break
    sync_device(device)
    return fns


def benchmark_backends(
    sparse_model: nn.Module,
    dense_model: nn.Module,
    inputs: Sequence[tuple[int, int]],
    densities: Sequence[float],
    parts: Sequence[str] = ("backbone",),
    precisions: Sequence[str] = ("default",),
    repeats: int = 10,
    warmup: int = 1,
    compile_precisions: Sequence[str] = ("default",),
    compile_backend: str = "inductor",
    compile_parts: Sequence[str] = ("backbone", "segmentor"),
    graphs: bool | None = None,
    deadline: Deadline | None = None,
    notes: list[str] | None = None,
) -> list[BackendRow]:
    """Rows for every input size x part x precision x density (module docstring).

    ``compile_precisions`` / ``compile_parts``: where the compiled column is measured (one
    compile per size, part and precision); ``graphs``: the CUDA-graph column (default: on
    CUDA). Cases run one after the other (their graphs and compiled code freed in between);
    with a ``deadline`` a case is skipped, and said so in ``notes``, unless a minute is left
    (:data:`COMPILE_CASE_S` with a compile).
    """
    device = next(sparse_model.parameters()).device
    graphs = device.type == "cuda" if graphs is None else graphs
    notes = [] if notes is None else notes
    backend = backend_for(device.type).name
    rows = []
    for h, w in inputs:
        torch.manual_seed(0)
        x = torch.randn(1, 3, h, w, device=device)
        mask_sets = _mask_sets(sparse_model, x, densities, False)
        profile = count_flops(sparse_model, (h, w))
        for part in parts:
            for name in precisions:
                compiling = name in compile_precisions and part in compile_parts
                if deadline is not None and not deadline.allows(CASE_S):
                    notes.append(f"skipped {h}x{w} {part} {name}: time budget spent")
                    continue
                if compiling and deadline is not None and not deadline.allows(COMPILE_CASE_S):
                    notes.append(f"no compiled column for {h}x{w} {part} {name}: time budget")
                    compiling = False
                fns = _case_runs(sparse_model, dense_model, part, x, mask_sets, name,
                                 compile_backend if compiling else None, graphs, notes)
                ms = alternated_medians(fns, repeats, warmup, device)
                rows += _rows(ms, mask_sets, profile, sparse_model, part, f"{h}x{w}", name,
                              backend, device)
                del fns
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return rows


def _rows(ms: dict[str, float], mask_sets: dict, profile: Any, model: nn.Module, part: str,
          size: str, name: str, backend: str, device: torch.device) -> list[BackendRow]:
    from .density_masks import head_mask_densities

    rows = []
    for key, (masks, head) in mask_sets.items():
        timed = {c: ms.get(f"{c}@{key}") for c in COLUMNS[1:]}
        fastest = min(v for c, v in timed.items() if v is not None and c != "masked")
        ratio = _flops_ratio(profile, masks, part, head_mask_densities(model, head))
        speedup = ms["dense"] / fastest
        rows.append(BackendRow(
            input=size, part=part, precision=name, density=key, dense_ms=ms["dense"],
            masked_ms=timed["masked"], compiled_ms=timed["compiled"],
            sparse_ms=timed["sparse"], graph_ms=timed["graph"], auto_ms=timed["auto"],
            backend=backend, speedup=speedup, flops_ratio=ratio, realization=speedup * ratio,
            device=str(device)))
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_backends(rows: Sequence[BackendRow]) -> str:
    """A markdown table (to paste into docs/benchmarks.md)."""
    backend = rows[0].backend if rows else "sparse"
    header = ["input", "part", "precision", "density", "dense ms", "masked ms",
              "compiled masked ms", f"{backend} sparse ms", f"{backend} + graph ms", "auto ms",
              "speedup", "FLOPs ratio", "realization"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    for r in rows:
        density = r.density if isinstance(r.density, str) else f"{r.density:.2f}"
        cells = [r.input, r.part, r.precision, density, _ms(r.dense_ms), _ms(r.masked_ms),
                 _ms(r.compiled_ms), _ms(r.sparse_ms), _ms(r.graph_ms), _ms(r.auto_ms),
                 f"{r.speedup:.2f}x", f"{r.flops_ratio:.3f}", f"**{r.realization:.2f}**"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def crossover_hint(rows: Sequence[BackendRow]) -> str:
    """Where the ``sparse`` column beat the masked path, per part (densities measured in the
    default precision): what ``CUDA_CROSSOVER`` in
    :mod:`seg_sparse.sampling.execution.triton_backend` could be set from."""
    lines = []
    for part in dict.fromkeys(r.part for r in rows):
        measured = [r for r in rows if r.part == part and r.precision == "default"
                    and not isinstance(r.density, str)]
        wins = sorted(r.density for r in measured if min(
            v for v in (r.sparse_ms, r.graph_ms) if v is not None) < r.masked_ms)
        losses = sorted(r.density for r in measured if r.density not in wins)
        lines.append(f"{part}: sparse faster than masked at densities {wins or 'none'}, "
                     f"slower at {losses or 'none'}")
    return "\n".join(lines)


def forward_of(model: nn.Module, part: str, x: torch.Tensor) -> Callable[[], Any]:
    """The forward a row times (the backbone, or the segmentor's ``encode_decode``)."""
    return _forward(model, part, x)
