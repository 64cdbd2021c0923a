"""The sampling options every sampling layer takes, in one place.

Backbone blocks, the sampled decode head and the segmentation and detection backbones all read
the same seven options from their configs (``model.backbone.sampler``,
``model.decode_head.sampling.grid_interval``, ...). :class:`SamplingOptions` holds them once,
with one set of defaults, and checks every value when it is set, so ``block.execution = 'x'``
fails as loudly as a bad config does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .samplers import SAMPLERS

#: Execution modes of a sampling layer at inference (training always runs ``'masked'``).
EXECUTION_MODES = ("masked", "sparse", "auto")


def check_execution(mode: Any) -> str:
    """Validated execution mode; ValueError naming the bad value."""
    if mode not in EXECUTION_MODES:
        raise ValueError(f"execution must be one of {EXECUTION_MODES}, got {mode!r}")
    return mode


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _integer(value: Any) -> bool:
    return _number(value) and int(value) == value


#: option -> what is wrong with a value (None: nothing). The config checks
#: (:mod:`seg_sparse.apis.config_values`) report these against the config key.
PROBLEMS: dict[str, Callable[[Any], str | None]] = {
    "sampler": lambda v: None if v in SAMPLERS else f"must be one of {sorted(SAMPLERS)}",
    "grid_interval": lambda v: None if v is None or (_integer(v) and v >= 0)
    else "must be None (no grid prior) or an integer >= 0",
    "interp_window": lambda v: None if _integer(v) and v > 0 and v % 2
    else "must be a positive odd integer",
    "t0": lambda v: None if _number(v) and v > 0 else "must be a finite number > 0",
    "t_final": lambda v: None if _number(v) and v > 0 else "must be a finite number > 0",
    "max_iters": lambda v: None if _integer(v) and v > 0 else "must be a positive integer",
    "execution": lambda v: None if v in EXECUTION_MODES else f"must be one of {EXECUTION_MODES}",
}
#: the value stored once checked
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "grid_interval": lambda v: None if v is None else int(v),
    "interp_window": int, "t0": float, "t_final": float, "max_iters": int,
}


def option_problem(name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for option ``name`` (None: nothing)."""
    return PROBLEMS[name](value)


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
        if name in PROBLEMS:
            problem = option_problem(name, value)
            if problem:
                raise ValueError(f"{name} {problem}, got {value!r}")
            value = _CONVERT.get(name, lambda v: v)(value)
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
