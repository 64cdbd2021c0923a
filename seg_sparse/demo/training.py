"""Train and evaluate one demo model in-process with mmengine's Runner.

The console shows a stage header (printed by the caller) and mmengine's iteration lines; the
environment / config dump and the evaluation table still go to the run's log file.
"""

from __future__ import annotations

import io
import logging
import time
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from seg_sparse.analysis.sparsity_regions import RegionCollector, RegionSparsity
from seg_sparse.apis import DATALOADERS, load_config
from seg_sparse.sampling import set_sampling_generator

from .settings import DemoError, DemoSettings

#: Metric keys the demo reads (SparseIoUMetric with SparseFlopsHook reports all of them).
REQUIRED_METRICS = ("mIoU", "gflops_backbone_dense", "gflops_head", "gflops_total_dense",
                    "density_mean", "sampling_densities")


@dataclass
class ModelRun:
    """One trained and evaluated demo model."""

    name: str
    config: Path
    work_dir: Path
    iterations: int
    init_from: str | None
    runner: Runner = field(repr=False)
    checkpoint: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    train_time_s: float = 0.0
    eval_time_s: float = 0.0
    #: where the model computes (class boundaries vs interiors), from the evaluation pass;
    #: None for a model without sampling blocks
    regions: RegionSparsity | None = None

    @property
    def model(self) -> torch.nn.Module:
        return self.runner.model


def set_image_size(cfg: Config, size: tuple[int, int]) -> None:
    """Scenes of (H, W) = ``size``: training resize around it and crop half of it, evaluation
    on the full image."""
    h, w = size
    crop = (h // 2, w // 2)
    cfg.model.data_preprocessor.size = crop
    for loader in DATALOADERS:
        if cfg.get(loader) is None:
            continue
        for transform in cfg[loader].dataset.pipeline:
            if transform["type"] in ("RandomResize", "Resize"):
                transform["scale"] = (w, h)
            elif transform["type"] == "RandomCrop":
                transform["crop_size"] = crop


def set_iterations(cfg: Config, iters: int) -> None:
    """Run ``iters`` iterations: loop, LR schedule, checkpoint, temperature schedule."""
    cfg.train_cfg.max_iters = iters
    for scheduler in cfg.param_scheduler:
        if "end" in scheduler:
            scheduler["end"] = iters
    cfg.default_hooks.checkpoint.interval = iters
    if "max_iters" in cfg.model.backbone:
        cfg.model.backbone.max_iters = iters
    head_sampling = cfg.model.get("decode_head", {}).get("sampling")
    if head_sampling and "max_iters" in head_sampling:
        head_sampling.max_iters = iters


def build_config(config: Path, name: str, settings: DemoSettings,
                 iters: int | None, load_from: Path | None) -> Config:
    """The config file with the demo's data, size, iterations, seed and work dir applied."""
    cfg = load_config(str(config), data_root=str(settings.data_root))
    cfg.work_dir = str(settings.out_dir / "work_dirs" / name)
    cfg.launcher = "none"
    cfg.experiment_name = f"demo_{name}"
    cfg.randomness = dict(seed=settings.seed)
    set_image_size(cfg, settings.size)
    if iters is not None:
        set_iterations(cfg, iters)
    iters = cfg.train_cfg.max_iters
    cfg.default_hooks.logger.interval = max(1, min(5, iters // 4))
    # evaluation runs once, after training, through runner.test()
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_cfg.pop("val_interval", None)
    cfg.load_from = None if load_from is None else str(load_from)
    cfg.log_level = "WARNING"  # quiet while the Runner logs its environment and config
    return cfg


#: mmengine / mmseg warnings that say nothing about the demo's run (kept in the log file).
_NOISE = ("deprecated", "is the alias of", "The prefix is not set", "sampling_densities:")


class _ConsoleFilter(logging.Filter):
    """Iteration lines and warnings that matter; everything stays in the log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(noise in message for noise in _NOISE):
            return False
        return record.levelno >= logging.WARNING or message.startswith("Iter(")


def _show_progress(runner: Runner) -> None:
    """Log INFO again (file: everything; console: iteration lines and warnings)."""
    for handler in runner.logger.handlers:
        handler.setLevel(logging.INFO)
        if type(handler) is logging.StreamHandler:
            handler.addFilter(_ConsoleFilter())


def _quiet_loading(runner: Runner) -> None:
    """Send what mmengine prints while loading ``load_from`` to the log file: initialising the
    sparse model from the dense twin lists every new sampling parameter as missing, which is
    expected."""
    load_or_resume = runner.load_or_resume

    def load_quietly() -> None:
        with redirect_stdout(io.StringIO()) as printed:
            load_or_resume()
        if printed.getvalue().strip():
            runner.logger.info(printed.getvalue().strip())  # the console filter drops it

    runner.load_or_resume = load_quietly  # type: ignore[method-assign]


def _checkpoint(work_dir: Path) -> Path:
    pointer = work_dir / "last_checkpoint"
    if not pointer.is_file():
        raise DemoError(f"training finished without a checkpoint in {work_dir}")
    return Path(pointer.read_text().strip())


def train(name: str, config: Path, settings: DemoSettings, iters: int | None,
          load_from: Path | None = None) -> ModelRun:
    """Build the Runner and train; the model stays in memory for evaluation and figures."""
    cfg = build_config(config, name, settings, iters, load_from)
    runner = Runner.from_cfg(cfg)
    _show_progress(runner)
    if load_from is not None:
        _quiet_loading(runner)
    run = ModelRun(name=name, config=config, work_dir=Path(cfg.work_dir),
                   iterations=int(cfg.train_cfg.max_iters),
                   init_from=None if load_from is None else str(load_from), runner=runner)
    start = time.perf_counter()
    runner.train()
    run.train_time_s = time.perf_counter() - start
    run.checkpoint = _checkpoint(run.work_dir)
    return run


def sampling_generator(model: torch.nn.Module, seed: int) -> torch.Generator:
    """A seeded generator on the model's device, so stochastic masks repeat run to run."""
    device = next(model.parameters()).device
    return torch.Generator(device=device).manual_seed(seed)


class _RegionHook(Hook):
    """Hands every test batch's predictions to a :class:`RegionCollector` while the model
    still holds that batch's masks (the masks the metric's densities come from)."""

    def __init__(self, collector: RegionCollector) -> None:
        self.collector = collector

    def after_test_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                        outputs: Any = None) -> None:
        self.collector(outputs or (), runner.test_dataloader.dataset.metainfo)


def evaluate(run: ModelRun, seed: int) -> None:
    """mIoU, GFLOPs, densities and where the model computes on the validation scenes
    (stochastic masks, seeded)."""
    set_sampling_generator(run.model, sampling_generator(run.model, seed))
    collector = RegionCollector(run.model)
    run.runner.register_hook(_RegionHook(collector))
    start = time.perf_counter()
    metrics = run.runner.test()
    run.eval_time_s = time.perf_counter() - start
    set_sampling_generator(run.model, None)
    run.regions = collector.result
    missing = [k for k in REQUIRED_METRICS if k not in metrics]
    if missing:
        raise DemoError(
            f"the evaluation of the {run.name} model did not report {missing}; its config "
            f"({run.config}) needs test_evaluator=SparseIoUMetric and SparseFlopsHook"
        )
    run.metrics = dict(metrics)
