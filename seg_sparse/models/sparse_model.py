"""What a segmentor and a detector with a sparse backbone share: the sparsity loss, the logged
density / temperature, and the per-image densities attached to every prediction.

:class:`SparseModelMixin` goes before an OpenMMLab model class (mmseg's ``EncoderDecoder``,
mmdet's ``TwoStageDetector``) that has ``backbone``, ``extract_feat(inputs)``,
``loss(inputs, data_samples)`` returning a dict of losses and ``predict(inputs, data_samples,
...)`` returning data samples with ``set_metainfo``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from seg_sparse.sampling import SparseBottleneck, block_densities, sparse_blocks, sparsity_loss

#: Metainfo keys that ``predict()`` attaches to every data sample (read by the sparse metrics
#: and the FLOPs counter): block name (relative to the backbone) -> (d1, d2), and (H, W) of the
#: network input those densities were measured at.
DENSITIES_KEY = "sampling_densities"
INPUT_SHAPE_KEY = "sampling_input_shape"


class DensityRecorder:
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


def sampling_log(blocks: list[tuple[str, SparseBottleneck]], weight: float) -> dict[str, Tensor]:
    """``loss_sparse`` of the sampling blocks' last forward, plus the logged ``density`` (mean
    soft-mask density over blocks and both masks) and ``temperature`` (for samplers that use
    one). Only ``loss_sparse`` has ``loss`` in its name, so only it is added to the loss."""
    sampling = [(n, b) for n, b in blocks if not b.is_dense]
    if not sampling:
        return {}
    out = {"loss_sparse": sparsity_loss(sampling, weight)}
    with torch.no_grad():
        densities = block_densities(sampling)
        out["density"] = torch.stack(
            [torch.stack([d1.mean(), d2.mean()]) for d1, d2 in densities.values()]
        ).mean()
        temperatures = [b.temperature.value for _, b in sampling if b.sampler.uses_temperature]
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

    def _blocks(self) -> list[tuple[str, SparseBottleneck]]:
        return list(sparse_blocks(self.backbone))

    def extract_feat(self, inputs: Tensor) -> Any:
        feats = super().extract_feat(inputs)  # type: ignore[misc]
        if self._recorder is not None:
            blocks = self._blocks()
            if blocks:
                self._recorder.add(block_densities(blocks), inputs.shape[-2] * inputs.shape[-1])
        return feats

    def loss(self, inputs: Tensor, data_samples: Any) -> dict:
        losses = super().loss(inputs, data_samples)  # type: ignore[misc]
        losses.update(sampling_log(self._blocks(), self.sparse_loss_weight))
        return losses

    def predict(self, inputs: Tensor, data_samples: Any = None, **kwargs: Any) -> list:
        self._recorder = DensityRecorder()
        try:
            results = super().predict(inputs, data_samples, **kwargs)  # type: ignore[misc]
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
