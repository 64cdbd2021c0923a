"""Inference stability (appendix): evaluate a stochastic model N times with different seeds.

The paper's sampler draws a Bernoulli(p) mask at test time, so accuracy and GFLOPs vary between
runs; the appendix reports their mean / std over 5 runs, with and without the grid prior. Each
run here seeds the blocks' sampling generator with ``first_seed + run``, so a run can be
repeated exactly; the data order is fixed (the validation loader does not shuffle).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from seg_sparse.outputs import table
from seg_sparse.visualization import sampling_blocks

from .loading import (
    Evaluation,
    LoadedModel,
    evaluate,
    mean_std,
    without_grid_prior,
)

#: Scalars of each run that get a mean and std (the first: the accuracy, mIoU or mAP).
FIELDS = ("mIoU", "gflops_backbone", "gflops_total", "mean_density")


@dataclass
class StabilityResult:
    config: str
    checkpoint: str
    sampler: str
    grid_prior: bool
    seeds: list[int]
    runs: list[Evaluation]

    @property
    def fields(self) -> tuple[str, ...]:
        """:data:`FIELDS` with the runs' accuracy name (mIoU, or mAP for detection)."""
        return (self.runs[0].metric, *FIELDS[1:])

    def stats(self) -> dict[str, dict[str, float]]:
        """field -> {"mean", "std"} (population std, 0 when all runs agree)."""
        out = {}
        for field in self.fields:
            mean, std = mean_std([run.summary()[field] for run in self.runs])
            out[field] = {"mean": mean, "std": std}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "checkpoint": self.checkpoint,
            "sampler": self.sampler,
            "grid_prior": self.grid_prior,
            "std_definition": "population standard deviation over runs (ddof=0)",
            "runs": [{"seed": s, **r.summary()} for s, r in zip(self.seeds, self.runs)],
            **self.stats(),
        }

    def format_table(self) -> str:
        fields = self.fields
        rows: list[list[Any]] = [
            [f"run {i + 1} (seed {s})", *(r.summary()[f] for f in fields)]
            for i, (s, r) in enumerate(zip(self.seeds, self.runs))
        ]
        stats = self.stats()
        rows.append(["mean", *(stats[f]["mean"] for f in fields)])
        rows.append(["std", *(stats[f]["std"] for f in fields)])
        prior = "with" if self.grid_prior else "without"
        title = (f"Inference stability: {len(self.runs)} runs, sampler '{self.sampler}', "
                 f"{prior} grid prior, {self.runs[0].num_images} images")
        return title + "\n" + table(["", *fields], rows)


def run_stability(loaded: LoadedModel, runs: int = 5, num_images: int | None = None,
                  grid_prior: bool = True, first_seed: int = 0,
                  on_run: Any = None) -> StabilityResult:
    """Evaluate ``runs`` times, seeding the sampling noise with ``first_seed + i``.

    ``grid_prior=False`` switches the always-sampled grid off at test time. ``on_run(i, seed)``
    is called before each run (progress reporting).
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    blocks = sampling_blocks(loaded.model)
    if not blocks:
        raise ValueError(f"model of '{loaded.config_path}' has no sampling blocks (dense "
                         "sampler): every run would give the same result")
    seeds = [first_seed + i for i in range(runs)]
    results = []
    with nullcontext() if grid_prior else without_grid_prior(loaded.model):
        for i, seed in enumerate(seeds):
            if on_run is not None:
                on_run(i, seed)
            results.append(evaluate(loaded, num_images, seed))
    sampler = next(iter(blocks.values())).sampler.name
    return StabilityResult(loaded.config_path, loaded.checkpoint, sampler, grid_prior, seeds,
                           results)
