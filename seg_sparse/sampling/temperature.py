"""Annealed Gumbel-sigmoid temperature, kept as buffers so checkpoints resume the schedule."""

from __future__ import annotations

import torch
from torch import nn


class GumbelTemperature(nn.Module):
    """Exponentially decaying temperature T(i) = t0 * decay**i, decay = (t_final/t0)**(1/max_iters).

    T is clamped at ``t_final`` from ``max_iters`` on. The current temperature (``value``) and the
    iteration it belongs to (``iteration``) are buffers: they are saved in the state dict, so a
    resumed run continues the schedule, and :meth:`step` after loading goes on from the stored
    iteration. Hyper-parameters (t0, t_final, max_iters) come from the constructor (the config).
    """

    value: torch.Tensor
    iteration: torch.Tensor

    def __init__(self, t0: float = 1.0, t_final: float = 0.01, max_iters: int = 60000) -> None:
        super().__init__()
        if not (t0 > 0 and t_final > 0):
            raise ValueError(f"temperatures must be > 0, got t0={t0}, t_final={t_final}")
        if t_final > t0:
            raise ValueError(f"t_final={t_final} must not exceed t0={t0} (the schedule decays)")
        if int(max_iters) != max_iters or max_iters <= 0:
            raise ValueError(f"max_iters must be a positive integer, got {max_iters!r}")
        self.t0 = float(t0)
        self.t_final = float(t_final)
        self.max_iters = int(max_iters)
        self.decay = (self.t_final / self.t0) ** (1.0 / self.max_iters)
        self.register_buffer("value", torch.tensor(self.t0, dtype=torch.float32))
        self.register_buffer("iteration", torch.tensor(0, dtype=torch.long))

    def reschedule(self, max_iters: int) -> None:
        """End the schedule at ``max_iters`` instead (e.g. the training loop's count), in place.

        The current iteration is kept and the temperature recomputed for it.
        """
        if int(max_iters) != max_iters or max_iters <= 0:
            raise ValueError(f"max_iters must be a positive integer, got {max_iters!r}")
        self.max_iters = int(max_iters)
        self.decay = (self.t_final / self.t0) ** (1.0 / self.max_iters)
        self.set_iter(int(self.iteration.item()))

    def temperature_at(self, iteration: int) -> float:
        """The schedule's temperature at ``iteration`` (exactly ``t_final`` from max_iters on)."""
        if iteration < 0:
            raise ValueError(f"iteration must be >= 0, got {iteration}")
        if iteration >= self.max_iters:
            return self.t_final
        return max(self.t_final, self.t0 * self.decay**iteration)

    def set_iter(self, iteration: int) -> None:
        """Jump to ``iteration`` (e.g. the Runner's iteration, which is resume-safe)."""
        iteration = int(iteration)
        self.value.fill_(self.temperature_at(iteration))
        self.iteration.fill_(iteration)

    def step(self) -> None:
        """Advance one training iteration."""
        self.set_iter(int(self.iteration.item()) + 1)

    def extra_repr(self) -> str:
        return (
            f"t0={self.t0}, t_final={self.t_final}, max_iters={self.max_iters}, "
            f"iteration={int(self.iteration.item())}, value={float(self.value.item()):.5g}"
        )
