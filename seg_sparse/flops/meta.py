""":func:`count_flops` without computing anything: the profile measured on the meta device.

The counter only reads the output shapes of convolutions, so a forward on meta tensors (shapes,
no data) gives the same profile in a fraction of a second instead of a full CPU forward (a dense
ResNet-101 with DCN at 992x1664 takes minutes on two cores). The model itself is untouched: a
deep copy goes to the meta device, with the Gaussian interpolation passed through (it is a
functional convolution the counter does not see, and it inspects mask values, which meta
tensors do not have). Deformable convolutions run torchvision's shape function there
(``seg_sparse.ops.TORCHVISION_DEVICES``). Anything that still needs real values falls back to
the normal count.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from seg_sparse.sampling import GaussianInterpolation, set_sampling_generator

from .counter import count_flops
from .flops_report import FlopsReport


class _PassThrough(nn.Module):
    """Stands in for a :class:`GaussianInterpolation`; keeps its ``window`` (the counter's
    interpolation cost reads it)."""

    def __init__(self, window: int) -> None:
        super().__init__()
        self.window = window

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return features


@contextmanager
def _interpolation_passed_through(model: nn.Module) -> Iterator[None]:
    swapped = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, GaussianInterpolation):
                swapped.append((parent, name, child))
                setattr(parent, name, _PassThrough(child.window))
    try:
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def count_flops_on_meta(model: nn.Module, input_shape: tuple[int, int]) -> FlopsReport:
    """:func:`~seg_sparse.flops.count_flops` of ``model`` (segmentor or bare backbone), measured
    on a meta-device copy; falls back to the normal forward if the model needs real values."""
    try:
        shadow = copy.deepcopy(model).to("meta")
        set_sampling_generator(shadow, None)  # a seeded CPU generator cannot draw meta noise
        with _interpolation_passed_through(shadow):
            return count_flops(shadow, input_shape)
    except (NotImplementedError, RuntimeError, ValueError, TypeError):
        return count_flops(model, input_shape)
