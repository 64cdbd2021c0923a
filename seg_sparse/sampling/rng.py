"""Seeded sampling noise for compiled and exported models.

In eager mode every sampling layer draws its noise from its own generator
(:func:`~.stats.set_sampling_generator`) or torch's global RNG. A ``torch.Generator`` cannot
enter a ``torch.compile`` / ``torch.export`` graph, so there the layers draw from torch's
global RNG (:func:`~.samplers.logistic_noise`). :func:`seeded_sampling` keeps a seeded run
seeded: for the duration of a call it makes the layers' generator the global RNG (its state
copied in, and copied back after, so the generator advances as in eager mode) and restores
torch's own global state afterwards. Outside it, a compiled layer that holds a generator
draws eagerly from it (a graph break per mask, :meth:`~.layer.SamplingLayer.draw`), so the
seed is never silently ignored.

What holds (tests/test_compile.py): compiled under :func:`seeded_sampling`, the same seed
gives the same masks run after run. They equal the eager masks exactly when Inductor draws
with torch's own kernels (``torch._inductor.config.fallback_random = True``); with Inductor's
default (its own Philox-based kernels, faster) the compiled stream is a different one, seeded
from the generator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

_active = 0  # >0 while seeded_sampling runs (dynamo guards on it: a change recompiles)


def generator_is_global() -> bool:
    """Whether :func:`seeded_sampling` is active (the layers' generator is the global RNG)."""
    return _active > 0


def _default_generator(device: torch.device) -> torch.Generator:
    if device.type == "cpu":
        return torch.default_generator
    if device.type == "cuda":
        return torch.cuda.default_generators[device.index or torch.cuda.current_device()]
    raise ValueError(f"seeded_sampling supports CPU and CUDA generators, got {device}")


@contextmanager
def seeded_sampling(module: nn.Module) -> Iterator[None]:
    """Run compiled (or eager) calls of ``module`` on its sampling layers' generator.

    Inside, torch's global RNG of the generator's device continues the generator's stream; on
    exit the generator continues from where the draws inside left it, and torch's global RNG
    is restored. Without a generator (the layers draw from the global RNG anyway) nothing
    changes; layers with different generators are refused (ValueError).
    """
    from .model_layers import sampling_generators

    generators = sampling_generators(module)
    if not generators:
        yield
        return
    if len(generators) > 1:
        raise ValueError(f"seeded_sampling needs one generator for all sampling layers, the "
                         f"module's layers use {len(generators)}")
    global _active
    generator = generators[0]
    default = _default_generator(generator.device)
    saved = default.get_state()
    default.set_state(generator.get_state())
    _active += 1
    try:
        yield
    finally:
        _active -= 1
        generator.set_state(default.get_state())
        default.set_state(saved)
