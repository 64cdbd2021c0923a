"""Faster R-CNN that trains the backbone's sampling masks and reports their densities."""

from __future__ import annotations

from mmdet.models.detectors import FasterRCNN
from mmdet.registry import MODELS

from ..sparse_model import SparseModelMixin


@MODELS.register_module()
class SparseFasterRCNN(SparseModelMixin, FasterRCNN):
    """mmdet's Faster R-CNN plus the paper's sparsity loss and density bookkeeping.

    Training adds ``loss_sparse`` (``sparse_loss_weight`` x mean over the backbone's sampling
    blocks of 0.25 mean(p1) + 0.75 mean(p2)) to the RPN and RoI-head losses and logs
    ``density`` and ``temperature``. ``predict()`` attaches to every DetDataSample's metainfo
    ``sampling_densities`` (backbone block -> (d1, d2) of this image) and
    ``sampling_input_shape`` ((H, W) of the padded network input), which
    :class:`~seg_sparse.evaluation.SparseCocoMetric` turns into GFLOPs.

    Args:
        sparse_loss_weight: weight of the sparsity loss (the paper: 0.02 / 0.05 / 0.1 / 0.2
            on COCO).
        **kwargs: everything mmdet's ``FasterRCNN`` accepts.
    """
