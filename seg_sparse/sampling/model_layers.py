"""Sampling layers inside a whole model: finding them, and the switches that apply to all of
them at once (execution mode, noise generator, temperature iteration)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch import nn

from .bottleneck import SparseBottleneck
from .head import HeadSampling
from .layer import SamplingLayer
from .options import check_execution
from .temperature import GumbelTemperature

L = TypeVar("L", bound=nn.Module)


def _modules_of(module: nn.Module, kind: type[L]) -> Iterator[tuple[str, L]]:
    """(qualified name, submodule) for every submodule of type ``kind`` inside ``module``."""
    for name, child in module.named_modules():
        if isinstance(child, kind):
            yield name, child


def sparse_blocks(module: nn.Module) -> Iterator[tuple[str, SparseBottleneck]]:
    """(qualified name, block) for every :class:`SparseBottleneck` inside ``module``."""
    return _modules_of(module, SparseBottleneck)


def sampling_heads(module: nn.Module) -> Iterator[tuple[str, HeadSampling]]:
    """(qualified name, head sampling) for every :class:`HeadSampling` inside ``module``."""
    return _modules_of(module, HeadSampling)


def sampled_decode_head(model: nn.Module) -> tuple[nn.Module, HeadSampling] | None:
    """(``model.decode_head``, its :class:`HeadSampling`) when the decode head samples (not
    with the ``dense`` sampler), else None."""
    head = getattr(model, "decode_head", None)
    found = [] if head is None else [s for _, s in sampling_heads(head) if not s.is_dense]
    return (head, found[0]) if found else None


def sampling_layers(module: nn.Module) -> Iterator[tuple[str, SamplingLayer]]:
    """Blocks and head samplings inside ``module``: what execution mode, generator and
    sampler switches apply to."""
    return _modules_of(module, SamplingLayer)


def set_temperature_iter(module: nn.Module, iteration: int) -> None:
    """Set every Gumbel temperature inside ``module`` to the schedule's value at ``iteration``."""
    for child in module.modules():
        if isinstance(child, GumbelTemperature):
            child.set_iter(iteration)


def set_sampling_generator(module: nn.Module, generator: torch.Generator | None) -> None:
    """Make every sparse block and sampled head inside ``module`` draw its noise from
    ``generator``."""
    for _, layer in sampling_layers(module):
        layer.set_generator(generator)


def set_execution(module: nn.Module, mode: str) -> None:
    """Set the inference ``execution`` mode ('masked', 'sparse', 'auto') of every block and
    sampled head."""
    check_execution(mode)
    for _, layer in sampling_layers(module):
        layer.execution = mode


@contextmanager
def execution_mode(module: nn.Module, mode: str) -> Iterator[None]:
    """Temporarily run every block and sampled head of ``module`` with execution ``mode``."""
    layers = [layer for _, layer in sampling_layers(module)]
    saved = [layer.execution for layer in layers]
    try:
        set_execution(module, mode)
        yield
    finally:
        for layer, previous in zip(layers, saved):
            layer.execution = previous


def sampling_generators(module: nn.Module) -> list[torch.Generator]:
    """The distinct generators the sparse blocks and sampled heads of ``module`` draw from,
    in module order (empty when all use torch's global RNG); e.g. to save and restore their
    states."""
    found: list[torch.Generator] = []
    for _, layer in sampling_layers(module):
        generator = layer._generator
        if generator is not None and not any(generator is g for g in found):
            found.append(generator)
    return found
