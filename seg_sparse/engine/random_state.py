"""Every random state a training run draws from, as plain data a checkpoint can hold.

A resumed run repeats the uninterrupted one bit for bit only if each random source is where
it was when the checkpoint was written: torch's CPU (and CUDA) generator (dropout, DataLoader
seeds), the generators the sampling blocks draw their noise from (when one is set), numpy's
and Python's global generators (mmcv's random transforms) and the data sampler's seed (mmengine
draws a fresh one when the config sets no ``randomness.seed``). States are stored as tensors
and lists, so checkpoints still load with ``weights_only=True``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from mmengine.model import is_model_wrapper
from torch import nn

from seg_sparse.sampling import sampling_generators


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


def capture_random_states(model: nn.Module, sampler: Any = None) -> dict[str, Any]:
    """The current state of every generator a training iteration draws from."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "sampling_generators": [g.get_state() for g in sampling_generators(unwrap(model))],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["torch_cuda"] = torch.cuda.get_rng_state_all()
    if sampler is not None and isinstance(getattr(sampler, "seed", None), int):
        states["data_sampler"] = {"type": type(sampler).__name__, "seed": sampler.seed}
    return states


def restore_random_states(states: dict[str, Any], model: nn.Module) -> str | None:
    """Put torch, CUDA, numpy, Python and the sampling generators back to ``states``.

    Returns a warning when the model draws from a different number of sampling generators
    than were saved (their states are then left alone), else None.
    """
    torch.set_rng_state(states["torch"])
    if "torch_cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["torch_cuda"])
    saved = states["numpy"]
    np.random.set_state((saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["pos"],
                         saved["has_gauss"], saved["cached_gaussian"]))
    python = states["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))
    generators = sampling_generators(unwrap(model))
    if len(generators) != len(states["sampling_generators"]):
        return (f"the checkpoint holds {len(states['sampling_generators'])} sampling generator "
                f"state(s) but the model draws from {len(generators)}; their states are not "
                "restored, so the resumed run will not repeat the original exactly")
    for generator, state in zip(generators, states["sampling_generators"]):
        generator.set_state(state)
    return None


def restore_sampler_seed(states: dict[str, Any], sampler: Any) -> bool:
    """Give the data sampler the seed it had when ``states`` were captured, so it yields the
    same order; returns whether the seed changed. Must run before the sampler is iterated."""
    saved = states.get("data_sampler")
    if not saved or getattr(sampler, "seed", None) in (None, saved["seed"]):
        return False
    sampler.seed = saved["seed"]
    if hasattr(sampler, "_indices_of_rank"):  # mmengine's InfiniteSampler pre-builds them
        sampler.indices = sampler._indices_of_rank()
    return True


class RestoreBeforeFetch:
    """Wraps a train loop's data iterator: after ``skip`` batches (mmengine's skip-ahead on
    resume) it calls ``restore`` once, right before the first batch that is trained on, then
    hands the loop its original iterator back."""

    def __init__(self, loop: Any, skip: int, restore: Any) -> None:
        self._loop = loop
        self._inner = loop.dataloader_iterator
        self._skip = skip
        self._restore = restore

    def __iter__(self) -> RestoreBeforeFetch:
        return self

    def __next__(self) -> Any:
        if self._skip > 0:
            self._skip -= 1
            return next(self._inner)
        self._restore()
        self._loop.dataloader_iterator = self._inner
        return next(self._inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
