"""Inference rows of ``seg-sparse bench``: dense vs masked vs sparse execution, same weights.

* ``dense``: the dense twin (the same weights, ``sampler='dense'``: no mask predictors, no
  interpolation) on its fastest path (BN folded, channels-last, the fastest DCN);
* ``masked``: the sampling model computing densely and applying the masks (training's path);
* ``sparse``: the sampling model with ``execution='auto'``: computing where the masks sampled.

A sampled decode head (``SparseFCNHead``) gets masks at the same density as the blocks in the
``segmentor`` rows, and its executed GFLOPs enter their FLOPs ratio; the dense twin's head is
dense. For a detector the parts are ``backbone`` and ``detector`` (the whole ``predict``: FPN,
RPN, RoI head, NMS); its FLOPs are counted for the backbone only (the project's detection
convention), so ``detector`` rows have no FLOPs ratio or realization.

The three run in turn within each round (one process), medians over rounds, warm-up excluded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from seg_sparse.flops import FlopsReport, count_flops
from seg_sparse.sampling import execution_mode
from seg_sparse.sampling.execution import crossover_override

from .density_masks import (
    HeadMasks,
    Masks,
    head_mask_densities,
    head_masks_at_density,
    mask_shapes,
    masks_at_density,
    mean_densities,
    overridden_head_masks,
    overridden_masks,
    recorded_head_masks,
    recorded_masks,
)
from .timing import alternated_medians, freed_memory_tracked, peak_memory_bytes

PARTS = ("backbone", "segmentor")
DETECTION_PARTS = ("backbone", "detector")
CHECKPOINT = "checkpoint"


@dataclass
class InferenceRow:
    """One line of the inference table (times in ms, memory in MB)."""

    input: str
    part: str
    density: float | str
    mean_density: float
    dense_ms: float
    masked_ms: float
    sparse_ms: float
    gather_ms: float | None  # --crossover: every sampled layer gathered ('sparse')
    fullmap_ms: float | None  # --crossover: no layer gathered (full-map convs, masks applied)
    speedup: float
    flops_ratio: float | None  # None: not counted (a detector's heads)
    realization: float | None
    dense_peak_mb: float | None
    sparse_peak_mb: float | None
    device: str
    threads: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _forward(model: nn.Module, part: str, x: torch.Tensor) -> Callable[[], Any]:
    if part == "backbone":
        return lambda: model.backbone(x)
    if part == "detector":
        samples = detection_samples(x)
        return lambda: model.predict(x, samples, rescale=False)
    metas = [dict(img_shape=tuple(x.shape[-2:]), ori_shape=tuple(x.shape[-2:]))]
    return lambda: model.encode_decode(x, metas)


def detection_samples(x: torch.Tensor) -> list:
    """One ``DetDataSample`` per image of ``x`` with the metainfo mmdet's ``predict`` reads."""
    from mmdet.structures import DetDataSample

    shape = tuple(x.shape[-2:])
    return [DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                        batch_input_shape=shape, scale_factor=(1.0, 1.0)))
            for _ in range(x.shape[0])]


def is_detector(model: nn.Module) -> bool:
    """An mmdet detector (it has no decode head; seg_sparse's detectors have an RPN)."""
    return getattr(model, "decode_head", None) is None and hasattr(model, "rpn_head")


def _profile(model: nn.Module, shape: tuple[int, int]) -> FlopsReport:
    """The FLOPs profile: the whole segmentor, or a detector's backbone (shapes only)."""
    if is_detector(model):
        from seg_sparse.flops.meta import count_flops_on_meta

        return count_flops_on_meta(model.backbone, shape)
    return count_flops(model, shape)


def _runner(model: nn.Module, part: str, x: torch.Tensor, masks: Masks | None,
            execution: str, gather_below: float | None = None,
            head_masks: HeadMasks = None) -> Callable[[], Any]:
    forward = _forward(model, part, x)

    def run() -> Any:
        with ExitStack() as stack:
            stack.enter_context(torch.no_grad())
            stack.enter_context(execution_mode(model, execution))
            if gather_below is not None:
                stack.enter_context(crossover_override(gather_below))
            if masks is not None:
                stack.enter_context(overridden_masks(model.backbone, masks))
            stack.enter_context(overridden_head_masks(model, head_masks))
            return forward()

    return run


def _flops_ratio(profile: FlopsReport, masks: Masks, part: str,
                 head: dict[str, float] | None = None) -> float | None:
    report = profile.with_densities(mean_densities(masks), head)
    if part == "detector":
        return None  # FPN and heads are not counted
    if part == "backbone":
        return report.backbone_sparse / report.backbone_dense
    return report.total_sparse / report.total_dense


def _mask_sets(model: nn.Module, x: torch.Tensor, densities: Sequence[float],
               checkpoint_masks: bool) -> dict[float | str, tuple[Masks, HeadMasks]]:
    """Backbone and (for a sampled decode head) head masks per density key."""
    shapes = mask_shapes(model.backbone, x)
    head_shapes = recorded_head_masks(model, x)  # None without a sampled head
    sets: dict[float | str, tuple[Masks, HeadMasks]] = {
        d: (masks_at_density(model.backbone, x, d, shapes=shapes),
            head_masks_at_density(model, x, d, drawn=head_shapes)) for d in densities}
    if checkpoint_masks:
        sets[CHECKPOINT] = (recorded_masks(model.backbone, x), head_shapes)
    return sets


def _runs(sparse_model: nn.Module, dense_model: nn.Module, part: str, x: torch.Tensor,
          mask_sets: dict[float | str, tuple[Masks, HeadMasks]],
          crossover: bool) -> dict[str, Callable[[], Any]]:
    """The timed runs of one input and part, each model's path already run once (weight
    folding, allocator): dense, and masked / sparse (/ gather / full-map) per mask set."""
    fns = {"dense": _runner(dense_model, part, x, None, "auto")}
    for key, (masks, head) in mask_sets.items():
        fns[f"masked@{key}"] = _runner(sparse_model, part, x, masks, "masked", head_masks=head)
        fns[f"sparse@{key}"] = _runner(sparse_model, part, x, masks, "auto", head_masks=head)
        if crossover:
            fns[f"gather@{key}"] = _runner(sparse_model, part, x, masks, "sparse",
                                           head_masks=head)
            fns[f"fullmap@{key}"] = _runner(sparse_model, part, x, masks, "auto", 0.0,
                                            head_masks=head)
    first = next(iter(mask_sets))
    for name in ("dense", f"masked@{first}", f"sparse@{first}"):
        fns[name]()
    return fns


def _mb(value: int | None) -> float | None:
    return None if value is None else value / 2**20


def benchmark_inference(
    sparse_model: nn.Module,
    dense_model: nn.Module,
    inputs: Sequence[tuple[int, int]],
    densities: Sequence[float],
    parts: Sequence[str] = PARTS,
    repeats: int = 5,
    warmup: int = 0,
    image: torch.Tensor | None = None,
    memory: bool = True,
    crossover: bool = False,
) -> list[InferenceRow]:
    """Rows for every input size x part x density (plus the checkpoint's own masks when
    ``image`` is given: a (1, 3, H, W) preprocessed image, resized to each input size).

    Peak memory is measured first, for all sizes and parts, then the times. Each model's
    path runs once untimed before (weight folding, allocator); ``warmup`` adds untimed rounds
    of every run. ``crossover`` also times every sampled layer
    gathered ('sparse') and none gathered (full-map convs): the figures behind ``'auto'``'s
    per-layer choice.
    """
    device = next(sparse_model.parameters()).device
    threads = torch.get_num_threads()
    cases = []
    # Memory first, while freed tensors leave the resident set (which slows allocations, so
    # nothing is timed in this phase); then every timing in glibc's steady state.
    with freed_memory_tracked() if memory else nullcontext():
        for h, w in inputs:
            torch.manual_seed(0)
            if image is not None:
                x = nn.functional.interpolate(image.to(device), size=(h, w), mode="bilinear",
                                              align_corners=False)
            else:
                x = torch.randn(1, 3, h, w, device=device)
            mask_sets = _mask_sets(sparse_model, x, densities, image is not None)
            profile = _profile(sparse_model, (h, w))  # once per size; densities below
            for part in parts:
                fns = _runs(sparse_model, dense_model, part, x, mask_sets, crossover)
                peaks = {name: _mb(peak_memory_bytes(fns[name], device)) if memory else None
                         for name in fns if name == "dense" or name.startswith("sparse@")}
                cases.append((h, w, part, mask_sets, profile, fns, peaks))
    rows = []
    for h, w, part, mask_sets, profile, fns, peaks in cases:
        desc = f"bench {part} {h}x{w} ({len(fns)} runs x {warmup + repeats} rounds)"
        with tqdm(total=1, desc=desc, unit="table", leave=False):
            ms = alternated_medians(fns, repeats, warmup, device)
        for key, (masks, head) in mask_sets.items():
            ratio = _flops_ratio(profile, masks, part, head_mask_densities(sparse_model, head))
            speedup = ms["dense"] / ms[f"sparse@{key}"]
            values = list(mean_densities(masks).values())
            rows.append(InferenceRow(
                input=f"{h}x{w}", part=part, density=key,
                mean_density=sum(d1 + d2 for d1, d2 in values) / (2 * len(values)),
                dense_ms=ms["dense"], masked_ms=ms[f"masked@{key}"],
                sparse_ms=ms[f"sparse@{key}"], gather_ms=ms.get(f"gather@{key}"),
                fullmap_ms=ms.get(f"fullmap@{key}"), speedup=speedup, flops_ratio=ratio,
                realization=None if ratio is None else speedup * ratio,
                dense_peak_mb=peaks["dense"],
                sparse_peak_mb=peaks[f"sparse@{key}"], device=str(device), threads=threads,
            ))
    return rows
