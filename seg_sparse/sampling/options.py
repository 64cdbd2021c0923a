"""The sampling options every sampling layer takes, in one place.

Backbone blocks, the sampled decode head and the segmentation and detection backbones all read
the same seven options from their configs (``model.backbone.sampler``,
``model.decode_head.sampling.grid_interval``, ...). :class:`SamplingOptions` holds them once,
with one set of defaults, and checks every value when it is set, so ``block.execution = 'x'``
fails as loudly as a bad config does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .grid import check_grid_interval
from .samplers import SAMPLERS

#: Execution modes of a sampling layer at inference (training always runs ``'masked'``).
EXECUTION_MODES = ("masked", "sparse", "auto")


def check_execution(mode: Any) -> str:
    """Validated execution mode; ValueError naming the bad value."""
    if mode not in EXECUTION_MODES:
        raise ValueError(f"execution must be one of {EXECUTION_MODES}, got {mode!r}")
    return mode


def _sampler(value: Any) -> str:
    if value not in SAMPLERS:
        raise ValueError(f"unknown sampler {value!r}; choose one of {sorted(SAMPLERS)}")
    return value


def _grid_interval(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | type(None)):
        raise ValueError(f"grid interval must be None or an integer >= 0, got {value!r}")
    return None if value is None else check_grid_interval(value)


def _interp_window(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % 2 == 0:
        raise ValueError(f"interpolation window must be a positive odd integer, got {value!r}")
    return value


def _temperature(name: str) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
        return float(value)
    return check


def _max_iters(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 \
            or int(value) != value:
        raise ValueError(f"max_iters must be a positive integer, got {value!r}")
    return int(value)


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "sampler": _sampler,
    "grid_interval": _grid_interval,
    "interp_window": _interp_window,
    "t0": _temperature("t0"),
    "t_final": _temperature("t_final"),
    "max_iters": _max_iters,
    "execution": check_execution,
}


@dataclass
class SamplingOptions:
    """How a sampling layer samples and runs.

    Attributes:
        sampler: ``'stochastic'`` (the paper), ``'deterministic'`` (Determ Gumbel-Softmax),
            ``'relu'`` (ReLU-gate baseline) or ``'dense'`` (no sampling layers: the dense /
            uniform-sampling baseline).
        grid_interval: grid-prior interval k (positions with i % k == j % k == 0 always
            sampled); None (or 0) switches the prior off.
        interp_window: size of the Gaussian interpolation window (odd).
        t0, t_final, max_iters: the Gumbel temperature schedule (``SparseTemperatureHook``
            re-targets ``max_iters`` to the training loop's, so it matters only outside a
            Runner); ``t_final <= t0``.
        execution: inference path: ``'auto'`` (compute only at the sampled positions where
            that is faster), ``'sparse'`` (always), ``'masked'`` (the training computation, the
            reference). Training always runs ``'masked'`` (docs/design.md, "Execution paths").
    """

    sampler: str = "stochastic"
    grid_interval: int | None = 11
    interp_window: int = 7
    t0: float = 1.0
    t_final: float = 0.01
    max_iters: int = 60000
    execution: str = "auto"

    def __setattr__(self, name: str, value: Any) -> None:
        check = _CHECKS.get(name)
        value = value if check is None else check(value)
        if name in ("t0", "t_final"):
            set_ = self.__dict__  # not getattr: the class holds the defaults
            t0 = value if name == "t0" else set_.get("t0", value)
            t_final = value if name == "t_final" else set_.get("t_final", value)
            if t_final > t0:
                raise ValueError(f"t_final={t_final} must not exceed t0={t0} (the schedule "
                                 f"decays)")
        super().__setattr__(name, value)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def split(cls, kwargs: Mapping[str, Any]) -> tuple[SamplingOptions, dict[str, Any]]:
        """(options built from the sampling keys of ``kwargs``, the other keys)."""
        names = cls.names()
        options = cls(**{k: v for k, v in kwargs.items() if k in names})
        return options, {k: v for k, v in kwargs.items() if k not in names}

    def replace(self, **changes: Any) -> SamplingOptions:
        """A checked copy with ``changes`` applied (TypeError naming an unknown option)."""
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise TypeError(f"unknown sampling option(s) {unknown}; known: {list(self.names())}")
        return dataclasses.replace(self, **changes)
