"""mmcv's NMS and RoI ops on torchvision, for mmdetection without ``mmcv._ext``.

Faster R-CNN needs, at run time, only ``batched_nms`` (RPN proposals and the per-class NMS of
the box head) and ``RoIAlign`` (the RoI feature extractor); mmdet imports a few more names at
module load. These keep mmcv 2.1's call signatures and return conventions:

* ``nms(boxes, scores, iou_threshold, offset=0, score_threshold=0, max_num=-1)`` ->
  ``(dets (K, 5) = [x1, y1, x2, y2, score], kept indices)``, sorted by score, tensors or numpy
  arrays in and out; ``offset=1`` (legacy ``w = x2 - x1 + 1``) is the same NMS on boxes whose
  far corner is moved by one pixel;
* ``batched_nms(boxes, scores, idxs, nms_cfg, class_agnostic=False)``: per-class NMS by
  offsetting each class's boxes past the largest coordinate, ``split_thr`` (NMS class by
  class above that many boxes), ``max_num``, ``nms_cfg=None`` (sort only), as in mmcv;
* ``RoIAlign`` / ``roi_align``: torchvision's ``roi_align`` (same (K, 5) rois ``[batch index,
  x1, y1, x2, y2]``, ``spatial_scale``, ``sampling_ratio`` 0 = adaptive, ``aligned``); only
  mmcv's ``pool_mode='avg'`` exists there;
* ``RoIPool`` / ``roi_pool``: torchvision's ``roi_pool`` (Caffe's rounding of RoI corners to
  whole feature cells; mmcv's kernel does not round, so fractional boxes can pool a cell more
  or less at the border).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.utils import _pair
from torchvision.ops import nms as _tv_nms
from torchvision.ops import roi_align as _tv_roi_align
from torchvision.ops import roi_pool as _tv_roi_pool

from .missing_ops import missing_op_error

ArrayLike = Tensor | np.ndarray


def nms(boxes: ArrayLike, scores: ArrayLike, iou_threshold: float, offset: int = 0,
        score_threshold: float = 0, max_num: int = -1) -> tuple[ArrayLike, ArrayLike]:
    """mmcv's ``nms``: kept ``[x1, y1, x2, y2, score]`` rows and their indices, by score."""
    is_numpy = isinstance(boxes, np.ndarray)
    boxes_t = torch.from_numpy(boxes) if isinstance(boxes, np.ndarray) else boxes
    scores_t = torch.from_numpy(scores) if isinstance(scores, np.ndarray) else scores
    if boxes_t.dim() != 2 or boxes_t.size(1) != 4:
        raise ValueError(f"nms expects boxes of shape (N, 4), got {tuple(boxes_t.shape)}")
    if scores_t.shape != boxes_t.shape[:1]:
        raise ValueError(f"nms expects one score per box: boxes {tuple(boxes_t.shape)}, "
                         f"scores {tuple(scores_t.shape)}")
    if offset not in (0, 1):
        raise ValueError(f"nms offset must be 0 or 1, got {offset!r}")
    candidates = torch.arange(boxes_t.size(0), device=boxes_t.device)
    if score_threshold > 0:
        candidates = torch.nonzero(scores_t > score_threshold, as_tuple=False).squeeze(1)
    for_nms = boxes_t[candidates]
    if offset:
        for_nms = for_nms + for_nms.new_tensor([0.0, 0.0, 1.0, 1.0])
    keep = _tv_nms(for_nms.float(), scores_t[candidates].float(), float(iou_threshold))
    if max_num > 0:
        keep = keep[:max_num]
    inds = candidates[keep]
    dets = torch.cat((boxes_t[inds], scores_t[inds].reshape(-1, 1)), dim=1)
    if is_numpy:
        return dets.cpu().numpy(), inds.cpu().numpy()
    return dets, inds


def _nms_op(nms_type: Any):
    if nms_type in ("nms", nms):
        return nms
    raise missing_op_error(str(nms_type))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, nms_cfg: dict | None,
                class_agnostic: bool = False) -> tuple[Tensor, Tensor]:
    """mmcv's ``batched_nms``: NMS within each ``idxs`` group; returns (dets, keep)."""
    if nms_cfg is None:
        scores, inds = scores.sort(descending=True)
        return torch.cat([boxes[inds], scores[:, None]], -1), inds
    if boxes.size(-1) != 4:
        raise missing_op_error("nms_rotated")
    cfg = dict(nms_cfg)
    class_agnostic = cfg.pop("class_agnostic", class_agnostic)
    op = _nms_op(cfg.pop("type", "nms"))
    split_thr = cfg.pop("split_thr", 10000)
    if class_agnostic:
        boxes_for_nms = boxes
    else:
        # boxes of different groups can then never overlap (and stay in float range)
        offsets = idxs.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
        boxes_for_nms = boxes + offsets[:, None]
    if boxes_for_nms.shape[0] < split_thr:
        dets, keep = op(boxes_for_nms, scores, **cfg)
        boxes, scores = boxes[keep], dets[:, -1]
    else:
        max_num = cfg.pop("max_num", -1)
        kept = scores.new_zeros(scores.size(), dtype=torch.bool)
        for group in torch.unique(idxs):
            members = (idxs == group).nonzero(as_tuple=False).view(-1)
            _, keep = op(boxes_for_nms[members], scores[members], **cfg)
            kept[members[keep]] = True
        keep = kept.nonzero(as_tuple=False).view(-1)
        scores, order = scores[keep].sort(descending=True)
        keep = keep[order]
        boxes = boxes[keep]
        if max_num > 0:
            keep, boxes, scores = keep[:max_num], boxes[:max_num], scores[:max_num]
    return torch.cat([boxes, scores[:, None]], -1), keep


def roi_align(input: Tensor, rois: Tensor, output_size: Any, spatial_scale: float = 1.0,
              sampling_ratio: int = 0, pool_mode: str = "avg", aligned: bool = True) -> Tensor:
    """mmcv's functional ``roi_align`` (positional order as mmcv's); rois (K, 5)."""
    if pool_mode != "avg":
        raise ValueError(f"roi_align without compiled mmcv supports pool_mode='avg' only "
                         f"(torchvision), got {pool_mode!r}")
    return _tv_roi_align(input, rois.to(input.dtype), _pair(output_size), float(spatial_scale),
                         int(sampling_ratio), bool(aligned))


def roi_pool(input: Tensor, rois: Tensor, output_size: Any, spatial_scale: float = 1.0) -> Tensor:
    """mmcv's functional ``roi_pool`` (max pooling per bin); rois (K, 5)."""
    return _tv_roi_pool(input, rois.to(input.dtype), _pair(output_size), float(spatial_scale))


class RoIAlign(nn.Module):
    """mmcv's ``RoIAlign`` module (same constructor, ``output_size`` attribute and repr)."""

    def __init__(self, output_size: Any, spatial_scale: float = 1.0, sampling_ratio: int = 0,
                 pool_mode: str = "avg", aligned: bool = True,
                 use_torchvision: bool = False) -> None:
        super().__init__()
        if pool_mode != "avg":
            raise ValueError(f"RoIAlign without compiled mmcv supports pool_mode='avg' only "
                             f"(torchvision), got {pool_mode!r}")
        self.output_size = _pair(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.pool_mode = pool_mode
        self.aligned = aligned
        self.use_torchvision = use_torchvision

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale,
                         self.sampling_ratio, self.pool_mode, self.aligned)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, pool_mode={self.pool_mode}, "
                f"aligned={self.aligned}")


class RoIPool(nn.Module):
    """mmcv's ``RoIPool`` module."""

    def __init__(self, output_size: Any, spatial_scale: float = 1.0) -> None:
        super().__init__()
        self.output_size = _pair(output_size)
        self.spatial_scale = float(spatial_scale)

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"
