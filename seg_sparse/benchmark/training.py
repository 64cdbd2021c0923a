"""Training-step rows of ``seg-sparse bench --train``: the sampling model vs its dense twin.

One step = forward with the losses, backward, SGD update, at a fixed crop and batch, on
random images and labels (label maps for a segmentor, three random boxes per image for a
detector); the two models alternate in one process, medians over rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .timing import alternated_medians, freed_memory_tracked, peak_memory_bytes


@dataclass
class TrainingRow:
    """Median time (ms) and peak memory (MB) of one training step of each model."""

    model: str
    crop: str
    batch: int
    dense_ms: float
    sparse_ms: float
    time_ratio: float
    dense_peak_mb: float | None
    sparse_peak_mb: float | None
    memory_ratio: float | None
    device: str
    threads: int

    def to_dict(self) -> dict[str, Any]:
        """The inference rows' keys (part 'training', no FLOPs figures) plus its own."""
        row = asdict(self)
        row.update(input=self.crop, part="training", density=None,
                   speedup=self.dense_ms / self.sparse_ms, flops_ratio=None, realization=None)
        return row


def _batch(crop: tuple[int, int], batch: int, num_classes: int,
           device: torch.device, task: str = "segmentation") -> tuple[torch.Tensor, list]:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 3, *crop, generator=generator).to(device)
    if task == "detection":
        return inputs, _detection_samples(crop, batch, num_classes, generator, device)
    samples = []
    for _ in range(batch):
        sample = SegDataSample()
        labels = torch.randint(0, num_classes, (1, *crop), generator=generator)
        sample.gt_sem_seg = PixelData(data=labels.to(device))
        sample.set_metainfo(dict(img_shape=crop, ori_shape=crop, pad_shape=crop))
        samples.append(sample)
    return inputs, samples


def _detection_samples(crop: tuple[int, int], batch: int, num_classes: int,
                       generator: torch.Generator, device: torch.device) -> list:
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    h, w = crop
    samples = []
    for _ in range(batch):
        corners = torch.rand(3, 2, 2, generator=generator) * torch.tensor([w, h])
        low, high = corners.min(1).values, corners.max(1).values + 8
        boxes = torch.cat([low, torch.minimum(high, torch.tensor([w, h]))], 1)
        sample = DetDataSample(metainfo=dict(img_shape=crop, ori_shape=crop, pad_shape=crop,
                                             batch_input_shape=crop, scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=boxes.to(device),
            labels=torch.randint(0, num_classes, (3,), generator=generator).to(device))
        samples.append(sample)
    return samples


def training_step(model: nn.Module, inputs: torch.Tensor, samples: list,
                  lr: float = 0.01) -> Callable[[], None]:
    """A closure running one SGD step of ``model`` (mmseg segmentor or mmdet detector)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)

    def step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model.parse_losses(model.loss(inputs, samples))
        loss.backward()
        optimizer.step()

    return step


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def benchmark_training(
    sparse_model: nn.Module, dense_model: nn.Module, crop: tuple[int, int], batch: int,
    num_classes: int, label: str, repeats: int = 3, warmup: int = 1, memory: bool = True,
    task: str = "segmentation",
) -> TrainingRow:
    """Median step time and peak memory of both models."""
    device = next(sparse_model.parameters()).device
    inputs, samples = _batch(crop, batch, num_classes, device, task)
    steps = {"dense": training_step(dense_model, inputs, samples),
             "sparse": training_step(sparse_model, inputs, samples)}
    peaks: dict[str, int | None] = {k: None for k in steps}
    if memory:  # first, while freed tensors leave the resident set; the first step of each
        with freed_memory_tracked():  # also creates its optimizer state, counted alike
            peaks = {k: peak_memory_bytes(fn, device) for k, fn in steps.items()}
    ms = alternated_medians(steps, repeats, warmup, device)
    mb = {k: None if v is None else v / 2**20 for k, v in peaks.items()}
    return TrainingRow(
        model=label, crop=f"{crop[0]}x{crop[1]}", batch=batch, dense_ms=ms["dense"],
        sparse_ms=ms["sparse"], time_ratio=ms["sparse"] / ms["dense"],
        dense_peak_mb=mb["dense"], sparse_peak_mb=mb["sparse"],
        memory_ratio=_ratio(mb["sparse"], mb["dense"]), device=str(device),
        threads=torch.get_num_threads(),
    )
