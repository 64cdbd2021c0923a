"""Shared by the analysis experiments: a trained model from config + checkpoint, evaluated.

Everything goes through the code the ``flops`` and ``test`` commands use (``seg_sparse.apis``:
checked config options and values, the checkpoint/architecture check, weights-only loading; and
the sparse metric that reports mIoU with GFLOPs and densities), so an experiment measures what
``seg-sparse test`` reports with that metric.
"""

from __future__ import annotations

import contextlib
import io
import os.path as osp
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from mmengine.config import Config
from torch import nn

from seg_sparse.apis import ConfigError, build_eval_model, load_config, load_weights
from seg_sparse.flops import FlopsReport
from seg_sparse.sampling import sampling_layers

#: Called after every evaluated batch with its predictions and the dataset's metainfo, while
#: the model still holds that batch's masks (e.g. :class:`~.sparsity_regions.RegionCollector`).
BatchObserver = Callable[[Sequence[Any], Mapping[str, Any]], None]


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
    ``flops``: the model's MAC profile at the evaluated input size, with those densities;
    ``metric``: what ``miou`` holds -- ``mIoU``, or ``mAP`` (COCO bbox mAP in %) for detection.
    """

    num_images: int
    miou: float
    densities: dict[str, tuple[float, float]]
    flops: FlopsReport
    metric: str = "mIoU"

    @property
    def gflops_backbone(self) -> float:
        """Backbone GFLOPs as executed (the paper's figure)."""
        value = self.flops.backbone_sparse
        return self.flops.backbone_dense if value is None else value

    @property
    def gflops_head(self) -> float:
        """Decode-head GFLOPs as executed (dense unless the head samples)."""
        value = self.flops.head_sparse
        return self.flops.head_gflops if value is None else value

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
            self.metric: self.miou,
            "gflops_backbone": self.gflops_backbone,
            "gflops_head": self.gflops_head,
            "gflops_head_dense": self.flops.head_gflops,
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
    differing keys; a missing file raises ``ConfigError`` / ``FileNotFoundError`` naming it.
    """
    if "://" not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint '{checkpoint}' does not exist")
    cfg = load_config(config, cfg_options, data_root)
    model = build_eval_model(cfg)
    load_weights(model, checkpoint, trust_checkpoint)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).eval()
    return LoadedModel(cfg, model, config, checkpoint)


def evaluate(loaded: LoadedModel, num_images: int | None = None,
             seed: int | None = 0, on_batch: BatchObserver | None = None) -> Evaluation:
    """mIoU (mAP), per-block densities and GFLOPs on the first ``num_images`` validation images
    (all of them when None), with the sparse metric of ``seg-sparse test``.

    Stochastic masks are drawn from a generator seeded with ``seed`` (None: torch's global
    RNG), so an evaluation can be repeated exactly. ``on_batch`` sees every batch's
    predictions (:data:`BatchObserver`).
    """
    from mmengine.logging import MMLogger

    count = num_images if num_images is not None else sys.maxsize  # capped at the set size
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel("WARNING")  # mmengine's dataset / metric chatter: commands print tables
    set_sampling_seed(loaded.model, seed)
    try:
        info, metric = evaluate_on_val_images(loaded.model, loaded.cfg, count, on_batch)
    finally:
        logger.setLevel(level)
        set_sampling_seed(loaded.model, None)
    report = metric.last_report
    densities = dict(report.densities or {})
    for block in report.blocks:  # dense blocks are implicit (1, 1) in the report
        densities.setdefault(block.name, (1.0, 1.0))
    return Evaluation(info["num_images"], float(info[info["metric"]]), densities, report,
                      info["metric"])


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
    """Temporarily switch the grid prior off in every sparse block and sampled head (a
    test-time choice: the prior only forces mask positions to 1, the weights are the same)."""
    blocks = [b for _, b in sampling_layers(model)]
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


def evaluate_on_val_images(model, cfg: Config, num_images: int,
                           on_batch: BatchObserver | None = None) -> tuple[dict[str, Any], Any]:
    """Evaluate ``model`` with the sparse metric on the first ``num_images`` validation images.

    Returns ({num_images, measured_input_shape, metric (name of the accuracy: mIoU, or mAP
    for detection), <metric>, densities (mean per block)[, head_densities (mean per sampled
    head conv)]}, the sparse metric used
    (:func:`seg_sparse.tasks.density_metric`), which caches the FLOPs profile of the measured
    shape).
    """
    from mmengine.runner import Runner
    from tqdm import tqdm

    from seg_sparse.tasks import accuracy, density_metric, unprefixed

    loader_cfg = cfg.get("val_dataloader") or cfg.get("test_dataloader")
    if loader_cfg is None:
        raise ConfigError("the config has no val_dataloader/test_dataloader to measure on")
    try:
        loader = Runner.build_dataloader(loader_cfg)
    except (FileNotFoundError, OSError, ValueError) as err:
        raise ConfigError(f"cannot build the validation dataset of the config ({err}); "
                           "generate or point to the data with --data-root") from err
    dataset = loader.dataset
    if len(dataset) == 0:
        raise ConfigError("the validation dataset is empty; check --data-root")
    num_images = min(num_images, len(dataset))
    metric = density_metric(cfg)
    metric.dataset_meta = dataset.metainfo
    done = 0
    with tqdm(total=num_images, desc="measuring densities", unit="img") as bar:
        for batch in loader:
            with torch.no_grad():  # as mmengine's test loop (detections keep no graph)
                outputs = model.test_step(batch)[: num_images - done]
            if on_batch is not None:
                on_batch(outputs, dataset.metainfo)
            metric.process(batch, [o.to_dict() for o in outputs])
            done += len(outputs)
            bar.update(len(outputs))
            if done >= num_images:
                break
    metric.set_flops_model(model)
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel("WARNING")  # the metric's tables: this command prints its own
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its summary
            metrics = unprefixed(metric.evaluate(done))
    finally:
        logger.setLevel(level)
    if "sampling_densities" not in metrics:
        raise ConfigError("the model reports no sampling densities (is it a "
                          "SparseEncoderDecoder / SparseFasterRCNN?); run without --checkpoint "
                          "for dense GFLOPs")
    measured_shape = metric.last_report.input_shape if metric.last_report else None
    name, value = accuracy(cfg, metrics)
    info = {
        "num_images": done,
        "measured_input_shape": list(measured_shape) if measured_shape else None,
        "metric": name,
        name: round(value, 2),
        "densities": {k: tuple(v) for k, v in metrics["sampling_densities"].items()},
    }
    if "head_sampling_densities" in metrics:
        info["head_densities"] = dict(metrics["head_sampling_densities"])
    return info, metric

