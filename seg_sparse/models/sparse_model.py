"""What a segmentor and a detector with a sparse backbone share: the sparsity loss, the logged
density / temperature, and the per-image densities attached to every prediction.

:class:`SparseModelMixin` goes before an OpenMMLab model class (mmseg's ``EncoderDecoder``,
mmdet's ``TwoStageDetector``) that has ``backbone``, ``extract_feat(inputs)``,
``loss(inputs, data_samples)`` returning a dict of losses and ``predict(inputs, data_samples,
...)`` returning data samples with ``set_metainfo``.

With ``test_cfg=dict(..., return_sampling_masks=True)`` (or inside
:meth:`SparseModelMixin.returning_sampling_masks`) every prediction also carries the masks
(docs/inference.md): ``sampling_masks`` holds, per backbone block, ``<block>.mask1`` and
``<block>.mask2``, and ``head_sampling_masks`` (a sampled decode head) ``<conv>``; each a bool
tensor (h, w) at that mask's feature resolution, True where the layer computed, covering the
network input (``sampling_input_shape``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from mmengine.structures import BaseDataElement
from torch import Tensor

from seg_sparse.sampling import (
    HeadSampling,
    SparseBottleneck,
    block_densities,
    computed_block_masks,
    computed_head_masks,
    mask_density,
    sampled_decode_head,
    sparse_blocks,
    sparsity_loss,
)

#: Metainfo keys that ``predict()`` attaches to every data sample (read by the sparse metrics
#: and the FLOPs counter): block name (relative to the backbone) -> (d1, d2), and (H, W) of the
#: network input those densities were measured at.
DENSITIES_KEY = "sampling_densities"
INPUT_SHAPE_KEY = "sampling_input_shape"
#: Metainfo key of a test-time-augmented prediction (:mod:`.tta`): the network input (H, W) of
#: each of its forward passes.
INPUT_SHAPES_KEY = "sampling_input_shapes"
#: Metainfo key of a sampled decode head's densities: conv name (relative to the head, e.g.
#: ``conv_cat``) -> fraction of positions computed, averaged like the blocks'.
HEAD_DENSITIES_KEY = "head_sampling_densities"
#: ``test_cfg`` key that puts the masks into every prediction, and the data fields they go to.
MASKS_OPTION = "return_sampling_masks"
MASKS_FIELD = "sampling_masks"
HEAD_MASKS_FIELD = "head_sampling_masks"


class DensityRecorder:
    """Area-weighted running average of per-image block densities over backbone forwards.

    Slide inference runs the backbone once per crop; weighting each crop by its pixel count
    gives the fraction of all computed positions that were sampled.
    """

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.area = 0
        self.forwards = 0

    def add(self, densities: dict[str, tuple[Tensor, ...]], area: int) -> None:
        """``densities``: name -> per-image densities (B,) of each of its masks."""
        for name, values in densities.items():
            value = torch.stack(list(values), dim=1).double() * area  # (B, masks)
            self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.area += area
        self.forwards += 1

    def per_image(self, index: int) -> dict[str, tuple[float, ...]]:
        return {name: tuple((s[index] / self.area).tolist())  # one host sync per layer
                for name, s in self.sums.items()}


def head_densities(head: HeadSampling, names: list[str]) -> dict[str, tuple[Tensor]]:
    """conv name -> (per-image density (B,),) of a sampled head's last forward."""
    if head.last_sampling is None:
        raise RuntimeError("the sampled head has not run a forward pass yet")
    return {name: (mask_density(head.sampler, mask),)
            for name, mask in zip(names, head.last_sampling.masks)}


def sampling_log(blocks: list[tuple[str, SparseBottleneck]], weight: float,
                 heads: list[HeadSampling] = ()) -> dict[str, Tensor]:
    """``loss_sparse`` of the sampling blocks' and heads' last forward, plus the logged
    ``density`` (mean soft-mask density over blocks and both masks), ``density_head`` (over
    the sampled head convs) and ``temperature`` (for samplers that use one). Only
    ``loss_sparse`` has ``loss`` in its name, so only it is added to the loss."""
    sampling = [(n, b) for n, b in blocks if not b.is_dense]
    heads = [h for h in heads if not h.is_dense]
    if not sampling and not heads:
        return {}
    out = {"loss_sparse": sparsity_loss(sampling, weight, heads)}
    with torch.no_grad():
        if sampling:
            densities = block_densities(sampling)
            out["density"] = torch.stack(
                [torch.stack([d1.mean(), d2.mean()]) for d1, d2 in densities.values()]
            ).mean()
        if heads:
            out["density_head"] = torch.stack(
                [mask_density(h.sampler, m).mean() for h in heads for m in h.last_sampling.masks]
            ).mean()
        temperatures = [layer.temperature.value for layer in [b for _, b in sampling] + heads
                        if layer.sampler.uses_temperature]
        if temperatures:
            out["temperature"] = temperatures[0].detach().clone()
    return out


class SparseModelMixin:
    """Adds the paper's sparsity loss and density bookkeeping to an OpenMMLab model.

    Args:
        sparse_loss_weight: weight of the sparsity loss (the paper: 0.05-0.3 on Cityscapes,
            0.02-0.2 on COCO).
        **kwargs: the wrapped model's arguments.
    """

    backbone: torch.nn.Module

    def __init__(self, sparse_loss_weight: float = 0.1, **kwargs: Any) -> None:
        if not sparse_loss_weight >= 0:
            raise ValueError(f"sparse_loss_weight must be >= 0, got {sparse_loss_weight!r}")
        super().__init__(**kwargs)
        self.sparse_loss_weight = float(sparse_loss_weight)
        self._recorder: DensityRecorder | None = None
        self._head_recorder: DensityRecorder | None = None

    def _blocks(self) -> list[tuple[str, SparseBottleneck]]:
        return list(sparse_blocks(self.backbone))

    def _record_head(self, inputs: Tensor) -> None:
        """Add the decode head's densities of the forward that just ran (during predict)."""
        if self._head_recorder is None:  # outside predict: nothing to record, no module walk
            return
        sampled = sampled_decode_head(self)
        if sampled is not None:
            head, sampling = sampled
            self._head_recorder.add(head_densities(sampling, head.sampled_layer_names()),
                                    inputs.shape[-2] * inputs.shape[-1])

    def extract_feat(self, inputs: Tensor) -> Any:
        feats = super().extract_feat(inputs)  # type: ignore[misc]
        if self._recorder is not None:
            blocks = self._blocks()
            if blocks:
                self._recorder.add(block_densities(blocks), inputs.shape[-2] * inputs.shape[-1])
        return feats

    def loss(self, inputs: Tensor, data_samples: Any) -> dict:
        losses = super().loss(inputs, data_samples)  # type: ignore[misc]
        sampled = sampled_decode_head(self)
        heads = [] if sampled is None else [sampled[1]]
        losses.update(sampling_log(self._blocks(), self.sparse_loss_weight, heads))
        return losses

    @property
    def returns_sampling_masks(self) -> bool:
        """Whether ``predict()`` puts the masks into the predictions (``test_cfg``'s
        ``return_sampling_masks``)."""
        return bool((getattr(self, "test_cfg", None) or {}).get(MASKS_OPTION, False))

    @contextmanager
    def returning_sampling_masks(self, enabled: bool = True) -> Iterator[None]:
        """Set ``test_cfg.return_sampling_masks`` to ``enabled`` inside the block."""
        from mmengine.config import ConfigDict

        saved = getattr(self, "test_cfg", None)
        self.test_cfg = ConfigDict({**(saved or {}), MASKS_OPTION: enabled})
        try:
            yield
        finally:
            self.test_cfg = saved

    def _attach_masks(self, results: list, forwards: int) -> None:
        """Put the last forward's computed masks of every block and sampled head conv into
        each data sample (one network forward per batch: whole-image inference)."""
        if forwards > 1:
            raise ValueError(
                f"{MASKS_OPTION} needs one network forward per batch (test_cfg mode='whole'); "
                f"this prediction ran {forwards} (slide inference), whose masks are per crop")
        blocks = computed_block_masks(self._blocks())
        sampled = sampled_decode_head(self)
        head = {} if sampled is None else computed_head_masks(
            sampled[1], sampled[0].sampled_layer_names())
        for i, sample in enumerate(results):
            sample.set_field(BaseDataElement(**{
                f"{name}.mask{k}": mask[i, 0] > 0.5
                for name, masks in blocks.items() for k, mask in enumerate(masks, 1)}),
                MASKS_FIELD)
            if head:
                sample.set_field(BaseDataElement(**{
                    name: mask[i, 0] > 0.5 for name, mask in head.items()}), HEAD_MASKS_FIELD)

    def predict(self, inputs: Tensor, data_samples: Any = None, **kwargs: Any) -> list:
        self._recorder, self._head_recorder = DensityRecorder(), DensityRecorder()
        try:
            results = super().predict(inputs, data_samples, **kwargs)  # type: ignore[misc]
            recorder, head_recorder = self._recorder, self._head_recorder
        finally:
            self._recorder = self._head_recorder = None
        input_shape = (int(inputs.shape[-2]), int(inputs.shape[-1]))
        for i, sample in enumerate(results):
            info = {
                DENSITIES_KEY: recorder.per_image(i) if recorder.area else {},
                INPUT_SHAPE_KEY: input_shape,
            }
            if head_recorder.area:
                info[HEAD_DENSITIES_KEY] = {
                    name: d for name, (d,) in head_recorder.per_image(i).items()}
            sample.set_metainfo(info)
        if self.returns_sampling_masks:
            self._attach_masks(results, max(recorder.forwards, head_recorder.forwards))
        return results
