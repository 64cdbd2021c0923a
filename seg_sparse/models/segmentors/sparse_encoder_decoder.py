"""EncoderDecoder that trains the backbone's sampling masks and reports their densities."""

from __future__ import annotations

from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from torch import Tensor

from ..sparse_model import DENSITIES_KEY, HEAD_DENSITIES_KEY, INPUT_SHAPE_KEY, SparseModelMixin

__all__ = ["DENSITIES_KEY", "HEAD_DENSITIES_KEY", "INPUT_SHAPE_KEY", "SparseEncoderDecoder"]


@MODELS.register_module()
class SparseEncoderDecoder(SparseModelMixin, EncoderDecoder):
    """mmseg's EncoderDecoder plus the paper's sparsity loss and density bookkeeping.

    Training adds ``loss_sparse`` (``sparse_loss_weight`` x mean over sampling blocks of
    0.25 mean(p1) + 0.75 mean(p2)) and logs ``density`` (mean ``block_densities`` over blocks
    and both masks) and ``temperature`` (the Gumbel temperature, for samplers that use one);
    their names contain no ``loss``, so mmengine logs them without adding them to the loss.

    ``predict()`` attaches to every SegDataSample's metainfo ``sampling_densities`` (backbone
    block name -> (d1, d2), this image's fraction of sampled positions of each mask, averaged
    over the backbone forwards of slide inference) and ``sampling_input_shape`` ((H, W) of the
    network input). Blocks with the ``dense`` sampler report (1.0, 1.0). With a sampled
    decode head (``SparseFCNHead``) training adds its term to ``loss_sparse`` and logs
    ``density_head``, and ``predict()`` also attaches ``head_sampling_densities`` (head conv
    name -> this image's fraction of computed positions).

    Args:
        sparse_loss_weight: weight of the sparsity loss (the paper: 0.05-0.3 on Cityscapes).
        **kwargs: everything mmseg's ``EncoderDecoder`` accepts.
    """

    def encode_decode(self, inputs: Tensor, batch_img_metas: list[dict]) -> Tensor:
        logits = super().encode_decode(inputs, batch_img_metas)
        self._record_head(inputs)  # once per network forward, as the backbone's densities
        return logits
