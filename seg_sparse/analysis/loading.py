"""Shared by the analysis experiments: a trained model from config + checkpoint, evaluated.

Everything goes through the code the ``flops`` and ``test`` commands use (checked config
options, the checkpoint/architecture check, weights-only loading, and the sparse metric that
reports mIoU with GFLOPs and densities), so an experiment measures what ``seg-sparse test``
reports with that metric.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from mmengine.config import Config
from torch import nn

from seg_sparse.flops import FlopsReport
from seg_sparse.sampling import sparse_blocks


@dataclass
class LoadedModel:
    """A segmentor in eval mode with its checkpoint loaded, and the config it was built from."""

    cfg: Config
    model: nn.Module
    config_path: str
    checkpoint: str


@dataclass
class Evaluation:
    """One evaluation on (the first ``num_images`` of) the validation set.

    ``densities``: backbone block name -> mean (d1, d2) over images (dense blocks: (1, 1));
    ``flops``: the model's MAC profile at the evaluated input size, with those densities.
    """

    num_images: int
    miou: float
    densities: dict[str, tuple[float, float]]
    flops: FlopsReport

    @property
    def gflops_backbone(self) -> float:
        """Backbone GFLOPs as executed (the paper's figure)."""
        value = self.flops.backbone_sparse
        return self.flops.backbone_dense if value is None else value

    @property
    def gflops_total(self) -> float:
        value = self.flops.total_sparse
        return self.flops.total_dense if value is None else value

    @property
    def mean_density(self) -> float:
        value = self.flops.mean_density()
        return 1.0 if value is None else value

    def summary(self) -> dict[str, Any]:
        """JSON-ready scalars."""
        return {
            "num_images": self.num_images,
            "mIoU": self.miou,
            "gflops_backbone": self.gflops_backbone,
            "gflops_head": self.flops.head_gflops,
            "gflops_total": self.gflops_total,
            "gflops_backbone_dense": self.flops.backbone_dense,
            "mean_density": self.mean_density,
            "input_shape": list(self.flops.input_shape),
        }


def load_model(
    config: str,
    checkpoint: str,
    cfg_options: dict | None = None,
    data_root: str | None = None,
    trust_checkpoint: bool = False,
    device: str | torch.device | None = None,
) -> LoadedModel:
    """Build the config's model and load ``checkpoint`` into it (GPU when available).

    A checkpoint of another architecture raises ``CheckpointMismatchError`` listing the
    differing keys; a missing file raises ``CommandError`` naming it.
    """
    import os.path as osp

    from seg_sparse.cli.common import CommandError
    from seg_sparse.cli.flops import _build_model, _load_config, _load_weights

    if not osp.isfile(config):
        raise CommandError(f"config file '{config}' does not exist")
    if not osp.isfile(checkpoint):
        raise CommandError(f"checkpoint '{checkpoint}' does not exist")
    args = argparse.Namespace(config=config, cfg_options=cfg_options, data_root=data_root)
    cfg = _load_config(args)
    model = _build_model(cfg)
    _load_weights(model, checkpoint, trust_checkpoint)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return LoadedModel(cfg, model.to(device).eval(), config, checkpoint)


def evaluate(loaded: LoadedModel, num_images: int | None = None,
             seed: int | None = 0) -> Evaluation:
    """mIoU, per-block densities and GFLOPs on the first ``num_images`` validation images
    (all of them when None), with the sparse metric of ``seg-sparse test``.

    Stochastic masks are drawn from a generator seeded with ``seed`` (None: torch's global
    RNG), so an evaluation can be repeated exactly.
    """
    from mmengine.logging import MMLogger

    from seg_sparse.cli.flops import measure_densities

    count = num_images if num_images is not None else sys.maxsize  # capped at the set size
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel("WARNING")  # mmengine's dataset / metric chatter: commands print tables
    set_sampling_seed(loaded.model, seed)
    try:
        info, metric = measure_densities(loaded.model, loaded.cfg, count)
    finally:
        logger.setLevel(level)
        set_sampling_seed(loaded.model, None)
    report = metric.last_report
    densities = dict(report.densities or {})
    for block in report.blocks:  # dense blocks are implicit (1, 1) in the report
        densities.setdefault(block.name, (1.0, 1.0))
    return Evaluation(info["num_images"], float(info["mIoU"]), densities, report)


def set_sampling_seed(model: nn.Module, seed: int | None) -> None:
    """Draw the stochastic masks from a generator seeded with ``seed`` (None: global RNG)."""
    from seg_sparse.sampling import set_sampling_generator

    generator = None
    if seed is not None:
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(int(seed))
    set_sampling_generator(model, generator)


@contextmanager
def without_grid_prior(model: nn.Module) -> Iterator[None]:
    """Temporarily switch the grid prior off in every sparse block (a test-time choice: the
    prior only forces mask positions to 1, the weights are the same)."""
    blocks = [b for _, b in sparse_blocks(getattr(model, "backbone", model))]
    saved = [b.grid_interval for b in blocks]
    try:
        for block in blocks:
            block.grid_interval = None
        yield
    finally:
        for block, interval in zip(blocks, saved):
            block.grid_interval = interval


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof=0: 0 for identical runs, defined for 1)."""
    n = len(values)
    mean = sum(values) / n
    return mean, (sum((v - mean) ** 2 for v in values) / n) ** 0.5
