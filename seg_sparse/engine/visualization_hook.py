"""Where a sparse model computes, logged to mmengine's ``Visualizer`` at every validation.

mmengine's ``LoggerHook`` sends only scalar metrics to the visualizer, so the per-block
densities (a dict per evaluation) reach the text log and the test metrics JSON but neither
TensorBoard nor ``vis_data/scalars.json``, and the masks reach no backend at all.
:class:`SparseVisualizationHook` sends, after every validation (and test):

* scalars ``density/<block>/d1`` and ``density/<block>/d2`` (fraction of positions each mask
  of a backbone block computed) and ``head_density/<conv>`` (each conv of a sampled decode
  head), averaged over the evaluated images: the sparse metric's figures, gathered over all
  ranks (``SparseIoUMetric``, ``SparseCityscapesMetric``, ``SparseCocoMetric``); with another
  metric, the densities the predictions of the main process carry;
* one image per fixed validation image (``image_indices``, dataset indices): the input, the
  prediction and the masks of one block per stage (or ``blocks``) and of every sampled head
  conv over it (:func:`~seg_sparse.visualization.mask_overlay_figure`), from the very forward
  the metric evaluated.

Both go to every backend of the config's ``visualizer.vis_backends`` (``LocalVisBackend``:
``<work_dir>/<timestamp>/vis_data/scalars.json`` and ``vis_image/sampling_masks_<image>_<step>
.png``; ``TensorboardVisBackend``; ``WandbVisBackend``), at the step ``LoggerHook`` logs the
validation metrics at (the iteration, or the epoch with ``log_metric_by_epoch``; 0 in a test
run). Enable it with one config line (docs/visualization.md)::

    custom_hooks = _base_.custom_hooks + [dict(type='SparseVisualizationHook')]
"""

from __future__ import annotations

import logging
import os.path as osp
from collections.abc import Mapping, Sequence
from typing import Any

from mmengine.dist import is_main_process
from mmengine.hooks import Hook, LoggerHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch import nn

from seg_sparse.apis.config_values import ConfigValueError

from .registry import register_hook

#: Scalar name prefixes: backbone blocks (``density/layer3.2/d1``), sampled head convs.
BLOCK_PREFIX = "density"
HEAD_PREFIX = "head_density"
#: Image name prefix (no ``/``: mmengine's local backend writes the name as a file name).
IMAGE_PREFIX = "sampling_masks"


def density_scalars(densities: Mapping[str, Sequence[float]] | None,
                    head_densities: Mapping[str, float] | None) -> dict[str, float]:
    """Flat scalar names -> values: ``density/<block>/d1``, ``density/<block>/d2`` and
    ``head_density/<conv>``."""
    scalars = {}
    for name, (d1, d2) in (densities or {}).items():
        scalars[f"{BLOCK_PREFIX}/{name}/d1"] = float(d1)
        scalars[f"{BLOCK_PREFIX}/{name}/d2"] = float(d2)
    for name, density in (head_densities or {}).items():
        scalars[f"{HEAD_PREFIX}/{name}"] = float(density)
    return scalars


def metrics_step(runner: Any, mode: str) -> int:
    """The step ``LoggerHook`` gives the metrics of a ``mode`` ('val' / 'test') evaluation."""
    loop = getattr(runner, "_train_loop", None)  # reading train_loop would build it
    if mode == "test" or loop is None or isinstance(loop, dict):
        return 0
    logger = next((h for h in runner.hooks if isinstance(h, LoggerHook)), None)
    return runner.epoch if logger is not None and logger.log_metric_by_epoch else runner.iter


@register_hook
class SparseVisualizationHook(Hook):
    """Logs per-block / per-head-conv densities as scalars and mask overlays of fixed
    validation images as images to the runner's visualizer, after every validation and test.

    Args:
        image_indices: dataset indices of the validation (test) images drawn every time; in
            distributed runs only those the main process evaluates are drawn (with mmengine's
            default sampler, indices divisible by the world size).
        blocks: backbone blocks shown; None: one per stage (the last of each), ``'all'``.
        head: also show the mask of every conv of a sampled decode head.
        backend_args: mmengine file backend arguments to read the images with.
    """

    priority = "NORMAL"

    def __init__(self, image_indices: Sequence[int] = (0,),
                 blocks: Sequence[str] | str | None = None, head: bool = True,
                 backend_args: dict | None = None) -> None:
        if isinstance(image_indices, int):
            image_indices = (image_indices,)
        bad = [i for i in image_indices if not isinstance(i, int) or isinstance(i, bool) or i < 0]
        if bad:
            raise ConfigValueError(f"SparseVisualizationHook: image_indices must be dataset "
                                   f"indices (ints >= 0), got {list(image_indices)!r}")
        self.image_indices = tuple(image_indices)
        self.blocks = blocks
        self.head = bool(head)
        self.backend_args = backend_args
        self._wanted: dict[str, int] = {}  # image path -> dataset index
        self._records: list[dict] = []
        self._warned: set[str] = set()

    # -- mmengine hook points ---------------------------------------------------------------
    def before_train(self, runner: Any) -> None:
        """Check ``image_indices`` against the validation set before the first iteration, not
        at the first validation."""
        from mmengine.runner import BaseLoop

        loop = getattr(runner, "_val_loop", None)  # built by now, if the run validates
        if isinstance(loop, BaseLoop):
            self._resolve_images(runner, loop)

    def before_val_epoch(self, runner: Any) -> None:
        self._resolve_images(runner, runner.val_loop)

    def before_test_epoch(self, runner: Any) -> None:
        self._resolve_images(runner, runner.test_loop)

    def after_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                       outputs: Sequence | None = None) -> None:
        self._after_batch(runner, outputs or (), "val")

    def after_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                        outputs: Sequence | None = None) -> None:
        self._after_batch(runner, outputs or (), "test")

    def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        self._log_densities(runner, metrics or {}, "val")

    def after_test_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        self._log_densities(runner, metrics or {}, "test")

    # -- internals --------------------------------------------------------------------------
    def _resolve_images(self, runner: Any, loop: Any) -> None:
        """Resolve the image paths of ``image_indices`` in the loop's dataset."""
        self._records = []
        dataset = loop.dataloader.dataset
        out_of_range = [i for i in self.image_indices if i >= len(dataset)]
        if out_of_range:
            raise ConfigValueError(f"SparseVisualizationHook: image_indices {out_of_range} out "
                                   f"of range for the {len(dataset)} images of the evaluated "
                                   "dataset")
        self._wanted = {dataset.get_data_info(i)["img_path"]: i for i in self.image_indices}

    def _after_batch(self, runner: Any, outputs: Sequence, mode: str) -> None:
        from seg_sparse.evaluation.sparse_metric import sampling_record

        self._records.extend(sampling_record(sample) for sample in outputs)
        if not self._wanted or not is_main_process():
            return
        for index, sample in enumerate(outputs):
            if sample.metainfo.get("img_path") in self._wanted:
                self._draw(runner, sample, index, mode)

    def _drawable_model(self, runner: Any) -> nn.Module | None:
        """The unwrapped model, if its last forward's masks belong to one whole image."""
        from seg_sparse.sampling import sampled_decode_head
        from seg_sparse.visualization import sampling_blocks

        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, "backbone"):
            self._warn_once("no_backbone", f"{type(model).__name__} has no backbone (a test-time "
                            "augmentation wrapper?): its masks are not drawn")
            return None
        test_cfg = getattr(model, "test_cfg", None) or {}
        if test_cfg.get("mode", "whole") != "whole":
            self._warn_once("slide", f"test_cfg.mode={test_cfg.get('mode')!r}: the blocks keep "
                            "the masks of the last crop only, so masks are drawn only with "
                            "mode='whole'")
            return None
        if not sampling_blocks(model) and sampled_decode_head(model) is None:
            self._warn_once("dense", "the model has no sampling layers: no masks to draw")
            return None
        return model

    def _draw(self, runner: Any, sample: Any, index: int, mode: str) -> None:
        import mmcv
        from mmengine import fileio

        from seg_sparse.visualization import (
            collect_block_masks,
            collect_head_masks,
            figure_to_rgb,
            image_geometry,
            mask_overlay_figure,
            prediction_panel,
            resize_to,
            sampling_blocks,
        )

        model = self._drawable_model(runner)
        if model is None:
            return
        path = sample.img_path
        size, region = image_geometry(sample)
        image = resize_to(mmcv.imfrombytes(fileio.get(path, backend_args=self.backend_args),
                                           channel_order="rgb"), size)
        masks = {}
        if sampling_blocks(model):
            masks = collect_block_masks(model, size, self.blocks, index, region)
        head_masks = {}
        if self.head and "pred_sem_seg" in sample:
            head_masks = collect_head_masks(model, size, index)
        dataset = getattr(runner, f"{mode}_dataloader").dataset
        prediction, legend = prediction_panel(image, sample, runner.cfg, dataset.metainfo)
        step = metrics_step(runner, mode)
        stem = osp.splitext(osp.basename(path))[0]
        where = f"validation at iteration {runner.iter}" if mode == "val" else "test run"
        figure = mask_overlay_figure(
            image, prediction, masks, head_masks=head_masks, **legend,
            title=f"{osp.basename(path)} (image {self._wanted[path]}): sampled positions, "
                  f"{where}")
        runner.visualizer.add_image(f"{IMAGE_PREFIX}_{stem}", figure_to_rgb(figure), step=step)

    def _log_densities(self, runner: Any, metrics: dict, mode: str) -> None:
        from seg_sparse.evaluation.sparse_metric import mean_densities, mean_head_densities
        from seg_sparse.tasks import unprefixed

        flat = unprefixed(metrics)
        densities = flat.get("sampling_densities")
        head = flat.get("head_sampling_densities")
        if densities is None and head is None:  # another metric: this process's predictions
            densities = mean_densities(self._records)
            head = mean_head_densities(self._records)
        self._records = []
        scalars = density_scalars(densities, head)
        if scalars:
            runner.visualizer.add_scalars(scalars, step=metrics_step(runner, mode))

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            print_log(f"SparseVisualizationHook: {message}", logger="current",
                      level=logging.WARNING)
