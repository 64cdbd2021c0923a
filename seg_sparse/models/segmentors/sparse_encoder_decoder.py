"""EncoderDecoder that trains the backbone's sampling masks and reports their densities."""

from __future__ import annotations

from typing import Any

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import OptSampleList, SampleList
from torch import Tensor

from seg_sparse.sampling import SparseBottleneck, block_densities, sparse_blocks, sparsity_loss

#: Metainfo keys that ``predict()`` attaches to every SegDataSample (read by the sparse metric
#: and the FLOPs counter): block name (relative to the backbone) -> (d1, d2), and (H, W) of the
#: network input those densities were measured at.
DENSITIES_KEY = "sampling_densities"
INPUT_SHAPE_KEY = "sampling_input_shape"


class _DensityRecorder:
    """Area-weighted running average of per-image block densities over backbone forwards.

    Slide inference runs the backbone once per crop; weighting each crop by its pixel count
    gives the fraction of all computed positions that were sampled.
    """

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.area = 0

    def add(self, densities: dict[str, tuple[Tensor, Tensor]], area: int) -> None:
        for name, (d1, d2) in densities.items():
            value = torch.stack([d1, d2], dim=1).double() * area  # (B, 2)
            self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.area += area

    def per_image(self, index: int) -> dict[str, tuple[float, float]]:
        return {
            name: (float(s[index, 0] / self.area), float(s[index, 1] / self.area))
            for name, s in self.sums.items()
        }


@MODELS.register_module()
class SparseEncoderDecoder(EncoderDecoder):
    """mmseg's EncoderDecoder plus the paper's sparsity loss and density bookkeeping.

    Training adds ``loss_sparse`` (``sparse_loss_weight`` x mean over sampling blocks of
    0.25 mean(p1) + 0.75 mean(p2)) and logs ``density`` (mean ``block_densities`` over blocks
    and both masks) and ``temperature`` (the Gumbel temperature, for samplers that use one);
    their names contain no ``loss``, so mmengine logs them without adding them to the loss.

    ``predict()`` attaches to every SegDataSample's metainfo ``sampling_densities`` (backbone
    block name -> (d1, d2), this image's fraction of sampled positions of each mask, averaged
    over the backbone forwards of slide inference) and ``sampling_input_shape`` ((H, W) of the
    network input). Blocks with the ``dense`` sampler report (1.0, 1.0).

    Args:
        sparse_loss_weight: weight of the sparsity loss (the paper: 0.05-0.3 on Cityscapes).
        **kwargs: everything mmseg's ``EncoderDecoder`` accepts.
    """

    def __init__(self, sparse_loss_weight: float = 0.1, **kwargs: Any) -> None:
        if not sparse_loss_weight >= 0:
            raise ValueError(f"sparse_loss_weight must be >= 0, got {sparse_loss_weight!r}")
        super().__init__(**kwargs)
        self.sparse_loss_weight = float(sparse_loss_weight)
        self._recorder: _DensityRecorder | None = None

    def _blocks(self) -> list[tuple[str, SparseBottleneck]]:
        return list(sparse_blocks(self.backbone))

    def extract_feat(self, inputs: Tensor) -> list[Tensor]:
        feats = super().extract_feat(inputs)
        if self._recorder is not None:
            blocks = self._blocks()
            if blocks:
                self._recorder.add(block_densities(blocks), inputs.shape[-2] * inputs.shape[-1])
        return feats

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        losses = super().loss(inputs, data_samples)
        sampling = [(n, b) for n, b in self._blocks() if not b.is_dense]
        if not sampling:
            return losses
        losses["loss_sparse"] = sparsity_loss(sampling, self.sparse_loss_weight)
        with torch.no_grad():
            densities = block_densities(sampling)
            losses["density"] = torch.stack(
                [torch.stack([d1.mean(), d2.mean()]) for d1, d2 in densities.values()]
            ).mean()
            temperatures = [b.temperature.value for _, b in sampling
                            if b.sampler.uses_temperature]
            if temperatures:
                losses["temperature"] = temperatures[0].detach().clone()
        return losses

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        self._recorder = _DensityRecorder()
        try:
            results = super().predict(inputs, data_samples)
            recorder = self._recorder
        finally:
            self._recorder = None
        input_shape = (int(inputs.shape[-2]), int(inputs.shape[-1]))
        for i, sample in enumerate(results):
            sample.set_metainfo({
                DENSITIES_KEY: recorder.per_image(i) if recorder.area else {},
                INPUT_SHAPE_KEY: input_shape,
            })
        return results
