"""``seg-sparse gpu-check``: equivalence on the device, the backends table, the training step.

One command for a short GPU window (docs/gpu.md). In order, each phase only if the time
budget still allows it (what was skipped is printed):

1. equivalence on the device, strict float32 (no TF32): every block kind (first block with
   stride and downsample, dilated DCN, DCN with stride, plain 3x3, ResNeXt groups with and
   without DCN) at densities 0 / grid only / 0.3 / 0.9 / 1.0, batch 1 and 4, ``'sparse'``
   against the masked path; the same blocks under bfloat16 and float16 autocast; the config's whole
   backbone and segmentor (with its sampled head) at two densities; the CUDA-graph replay
   against the eager sparse run;
2. the backends table (:mod:`.backends`) at 512x1024 and 1024x2048, default precision, the
   compiled masked path for the backbone;
3. one training step, the sampling model against its dense twin;
4. the table in bfloat16 and in TF32, then a compiled training step, if time is left.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from seg_sparse.sampling import SparseBottleneck, execution_mode

from .backends import (
    BackendRow,
    Deadline,
    benchmark_backends,
    crossover_hint,
    format_backends,
    graphed_runner,
)
from .density_masks import exact_density_mask, overridden_head_masks, overridden_masks

#: Block kinds of the equivalence check: make_check_block kwargs.
BLOCK_KINDS = {
    "first-downsample-stride2": dict(stride=2),
    "dilated-dcn": dict(dilation=2, with_dcn=True),
    "dcn-stride2": dict(stride=2, with_dcn=True),
    "plain-3x3": dict(),
    "resnext-groups": dict(stride=2, groups=4, width=32),
    "resnext-groups-dcn": dict(dilation=4, with_dcn=True, groups=4, width=32),
}
#: name: (density, grid interval)
DENSITIES = {"zero": (0.0, None), "grid-only": (0.0, 3), "0.3": (0.3, 3), "0.9": (0.9, 3),
             "1.0": (1.0, 3)}
#: Seconds the compiled training step needs left in the budget (two compiles, forward and
#: backward, then the timed steps).
COMPILED_TRAINING_S = 240.0
#: Largest relative error accepted (max |a - b| / max |b|) per precision.
TOLERANCE = {"float32": 1e-4, "bfloat16": 3e-2, "float16": 1e-2, "graph": 1e-6}


@dataclass
class CheckResult:
    """One equivalence check over ``cases`` cases: the worst relative error seen."""

    name: str
    cases: int
    max_rel_err: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_rel_err < self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def rel_err(a: Any, b: Any) -> float:
    """Worst relative error over (nested tuples of) tensors."""
    if isinstance(a, (tuple, list)):
        return max(rel_err(x, y) for x, y in zip(a, b))
    a, b = a.float(), b.float()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@contextmanager
def strict_float32() -> Iterator[None]:
    """No TF32 anywhere (convolutions, matmuls, the Triton kernels' dots)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def randomize_bn(module: nn.Module) -> None:
    """Random eval statistics and affine parameters for every BatchNorm2d in ``module``, so
    that folding them into the convs is actually checked (fresh BNs fold to the identity)."""
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.5, 0.5)


def make_check_block(device: torch.device, stride: int = 1, dilation: int = 1,
                     with_dcn: bool = False, groups: int = 1, width: int | None = None,
                     channels: int = 64, seed: int = 0) -> SparseBottleneck:
    """A block (``channels`` -> channels / 4 -> channels) with random eval BN statistics and
    real DCN offsets, in eval mode."""
    torch.manual_seed(seed)
    downsample = None
    if stride != 1:
        downsample = nn.Sequential(nn.Conv2d(channels, channels, 1, stride, bias=False),
                                   nn.BatchNorm2d(channels))
    block = SparseBottleneck(channels, channels // 4, stride=stride, dilation=dilation,
                             downsample=downsample, with_dcn=with_dcn, groups=groups,
                             width=width)
    randomize_bn(block)
    if with_dcn:
        nn.init.normal_(block.conv2_offset.weight, std=0.05)
    return block.eval().to(device)


def _block_case(kind: str, density: str, batch: int, device: torch.device,
                size: tuple[int, int] = (33, 47)) -> tuple[SparseBottleneck, torch.Tensor]:
    block = make_check_block(device, **BLOCK_KINDS[kind])
    generator = torch.Generator().manual_seed(batch)
    h, w = size
    h2, w2 = (h - 1) // block.stride + 1, (w - 1) // block.stride + 1
    p, grid = DENSITIES[density]
    block.mask_override = tuple(exact_density_mask(s, p, grid, generator).to(device)
                                for s in ((batch, 1, h, w), (batch, 1, h2, w2)))
    x = torch.randn(batch, block.inplanes, h, w, generator=generator).to(device)
    return block, x


def _both(module: nn.Module, forward: Any) -> tuple[Any, Any]:
    """(masked, sparse) outputs of ``forward()`` for ``module`` in both modes."""
    with torch.no_grad():
        with execution_mode(module, "masked"):
            masked = forward()
        with execution_mode(module, "sparse"):
            sparse = forward()
    return masked, sparse


def check_blocks(device: torch.device, batches: Sequence[int] = (1, 4)) -> list[CheckResult]:
    """Every block kind, density and batch in strict float32; every kind at 0.3 under
    bfloat16 autocast, and on CUDA float16 autocast (against strict float32 masked)."""
    halves = {"bfloat16": torch.bfloat16}
    if device.type == "cuda":
        halves["float16"] = torch.float16
    worst = dict.fromkeys(("float32", *halves), 0.0)
    cases = dict.fromkeys(("float32", *halves), 0)
    for kind in BLOCK_KINDS:
        for density in DENSITIES:
            for batch in batches:
                block, x = _block_case(kind, density, batch, device)
                with strict_float32():
                    masked, sparse = _both(block, lambda b=block, x=x: b(x))
                worst["float32"] = max(worst["float32"], rel_err(sparse, masked))
                cases["float32"] += 1
                if density != "0.3":
                    continue
                for name, dtype in halves.items():
                    with strict_float32(), torch.no_grad(), execution_mode(block, "sparse"), \
                            torch.autocast(device.type, dtype=dtype):
                        half = block(x)
                    worst[name] = max(worst[name], rel_err(half, masked))
                    cases[name] += 1
    return [CheckResult(f"blocks, {p}", cases[p], worst[p], TOLERANCE[p]) for p in worst]


def check_model(model: nn.Module, mask_sets: dict, x: torch.Tensor) -> list[CheckResult]:
    """The whole backbone and segmentor (sampled head included), sparse against masked in
    strict float32 at each mask set; on CUDA the graph replay against the eager sparse run."""
    from .backends import forward_of

    results = []
    for part in ("backbone", "segmentor"):
        worst, graph_worst = 0.0, None
        for masks, head in mask_sets.values():
            forward = forward_of(model, part, x)
            with strict_float32(), overridden_masks(model.backbone, masks), \
                    overridden_head_masks(model, head):
                masked, sparse = _both(model, forward)
            worst = max(worst, rel_err(sparse, masked))
            if x.device.type == "cuda":
                with strict_float32():
                    replay = graphed_runner(model, part, x, masks, head)()
                graph_worst = max(graph_worst or 0.0, rel_err(replay, sparse))
        results.append(CheckResult(f"{part} ({x.shape[-2]}x{x.shape[-1]})", len(mask_sets),
                                   worst, TOLERANCE["float32"]))
        if graph_worst is not None:
            results.append(CheckResult(f"{part}, CUDA graph replay vs eager sparse",
                                       len(mask_sets), graph_worst, TOLERANCE["graph"]))
    return results


def format_checks(results: Sequence[CheckResult]) -> str:
    lines = ["| check | cases | max relative error | tolerance | result |",
             "|---|---:|---:|---:|---|"]
    lines += [f"| {r.name} | {r.cases} | {r.max_rel_err:.1e} | {r.tolerance:.0e} | "
              f"{'pass' if r.passed else '**FAIL**'} |" for r in results]
    return "\n".join(lines)


@dataclass
class GpuCheckPlan:
    """What one run measures (defaults: the GPU check; ``dry_run`` shrinks it for a CPU)."""

    inputs: tuple[tuple[int, int], ...] = ((512, 1024), (1024, 2048))
    densities: tuple[float, ...] = (1.0, 0.5, 0.3)
    parts: tuple[str, ...] = ("backbone", "segmentor")
    check_size: tuple[int, int] = (256, 512)
    repeats: int = 10
    warmup: int = 1
    train_crop: tuple[int, int] = (512, 1024)
    train_batch: int = 2
    extra_precisions: tuple[str, ...] = ("bf16", "tf32", "fp32")
    compile_backend: str = "inductor"
    block_batches: tuple[int, ...] = (1, 4)
    budget_s: float | None = None  # seconds; the CLI gives 400


def run_gpu_check(models: Any, plan: GpuCheckPlan, log: Any = print) -> dict[str, Any]:
    """Run the phases of the module docstring; returns everything measured (JSON-ready)."""
    from .backends import _mask_sets
    from .tables import format_training
    from .training import benchmark_training

    deadline = Deadline(plan.budget_s)
    device = next(models.sparse.parameters()).device
    notes: list[str] = []
    started = time.perf_counter()
    result: dict[str, Any] = {"equivalence": [], "backends": [], "training": [],
                              "notes": notes}
    # 1. equivalence on the device
    checks = check_blocks(device, plan.block_batches)
    torch.manual_seed(0)
    x = torch.randn(1, 3, *plan.check_size, device=device)
    checks += check_model(models.sparse, _mask_sets(models.sparse, x, (0.3, 1.0), False), x)
    result["equivalence"] = [c.to_dict() for c in checks]
    log(f"## Equivalence on {device} ({time.perf_counter() - started:.0f} s)\n")
    log(format_checks(checks) + "\n")
    # 2. the backends table, default precision
    rows: list[BackendRow] = benchmark_backends(
        models.sparse, models.dense, plan.inputs, plan.densities, plan.parts, ("default",),
        plan.repeats, plan.warmup, compile_precisions=("default",),
        compile_backend=plan.compile_backend, compile_parts=("backbone",), deadline=deadline,
        notes=notes)
    # 3. the training step
    training = []
    if deadline.allows(60):
        training.append(benchmark_training(
            models.sparse_train, models.dense_train, plan.train_crop, plan.train_batch,
            models.num_classes, models.label, repeats=plan.repeats, warmup=plan.warmup))
    else:
        notes.append("skipped the training step: time budget spent")
    # 4. other precisions, then the compiled training step, while time is left
    rows += benchmark_backends(
        models.sparse, models.dense, plan.inputs, plan.densities, plan.parts,
        plan.extra_precisions, plan.repeats, plan.warmup, compile_precisions=(),
        deadline=deadline, notes=notes)
    if deadline.allows(COMPILED_TRAINING_S):
        training.append(_compiled_training(models, plan))
    else:
        notes.append("skipped the compiled training step: time budget spent")
    result["backends"] = [r.to_dict() for r in rows]
    result["training"] = [t.to_dict() for t in training]
    log(f"## Backends ({device}, batch 1)\n")
    log(format_backends(rows) + "\n")
    log(crossover_hint(rows) + "\n")
    if training:
        log("## Training step\n")
        log(format_training(training) + "\n")
    for note in notes:
        log(f"note: {note}")
    result["seconds"] = time.perf_counter() - started
    result["passed"] = all(c.passed for c in checks)
    log(f"\ngpu-check took {result['seconds']:.0f} s; equivalence "
        f"{'passed' if result['passed'] else 'FAILED'}")
    return result


def _compiled_training(models: Any, plan: GpuCheckPlan) -> Any:
    """The training step with each model's forward + losses under ``torch.compile``."""
    import copy

    from .training import benchmark_training

    compiled = []
    for model in (models.sparse_train, models.dense_train):
        twin = copy.deepcopy(model)
        twin.loss = torch.compile(twin.loss, backend=plan.compile_backend)
        compiled.append(twin)
    row = benchmark_training(compiled[0], compiled[1], plan.train_crop, plan.train_batch,
                             models.num_classes, models.label + " (compiled)",
                             repeats=plan.repeats, warmup=plan.warmup)
    return row
