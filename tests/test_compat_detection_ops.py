"""The fallback mmcv.ops for mmdet: NMS / RoI ops against torchvision and a reference NMS,
mmcv-lite's pure modules, placeholders for compiled ops, and mmdet importing on top."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms as tv_batched_nms
from torchvision.ops import nms as tv_nms
from torchvision.ops import roi_align as tv_roi_align
from torchvision.ops import roi_pool as tv_roi_pool

import seg_sparse  # noqa: F401  (installs the fallback)
from seg_sparse.compat import detection_ops


def random_boxes(n: int, seed: int = 0, size: float = 100.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` boxes in clusters (so that NMS suppresses) and distinct scores."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n // 4 + 1, 2, generator=g) * size
    xy = centres[torch.randint(len(centres), (n,), generator=g)] + torch.randn(n, 2, generator=g)
    wh = torch.rand(n, 2, generator=g) * 20 + 4
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], 1)
    return boxes, torch.randperm(n, generator=g).float() / n


def reference_nms(boxes: np.ndarray, scores: np.ndarray, thr: float, offset: int) -> list[int]:
    """Greedy NMS with mmcv's IoU (widths x2 - x1 + offset), written out."""
    order = list(np.argsort(-scores, kind="stable"))
    area = (boxes[:, 2] - boxes[:, 0] + offset) * (boxes[:, 3] - boxes[:, 1] + offset)
    keep = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        rest = []
        for j in order:
            w = max(0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]) + offset)
            h = max(0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]) + offset)
            if w * h / (area[i] + area[j] - w * h) <= thr:
                rest.append(j)
        order = rest
    return keep


def test_nms_matches_torchvision_and_returns_mmcv_dets():
    from mmcv.ops import nms

    boxes, scores = random_boxes(200)
    dets, keep = nms(boxes, scores, 0.5)
    expected = tv_nms(boxes, scores, 0.5)
    assert 0 < len(keep) < 200
    torch.testing.assert_close(keep, expected)
    torch.testing.assert_close(dets, torch.cat([boxes[expected], scores[expected, None]], 1))


def test_nms_offset_score_threshold_max_num_and_numpy():
    from mmcv.ops import nms

    boxes, scores = random_boxes(120, seed=1)
    for offset in (0, 1):
        expected = reference_nms(boxes.numpy(), scores.numpy(), 0.4, offset)
        assert nms(boxes, scores, 0.4, offset=offset)[1].tolist() == expected
    # score threshold: NMS among the boxes above it, indices into the original boxes
    above = torch.nonzero(scores > 0.5).squeeze(1)
    expected = above[tv_nms(boxes[above], scores[above], 0.4)]
    _, keep = nms(boxes, scores, 0.4, score_threshold=0.5, max_num=5)
    assert keep.tolist() == expected[:5].tolist()
    dets, keep = nms(boxes.numpy(), scores.numpy(), 0.4)
    assert isinstance(dets, np.ndarray) and isinstance(keep, np.ndarray)
    assert keep.tolist() == tv_nms(boxes, scores, 0.4).tolist()


@pytest.mark.parametrize("split_thr", [10000, 10], ids=["together", "class_by_class"])
def test_batched_nms_matches_torchvision(split_thr):
    from mmcv.ops.nms import batched_nms

    boxes, scores = random_boxes(150, seed=2)
    idxs = torch.randint(0, 4, (150,), generator=torch.Generator().manual_seed(3))
    dets, keep = batched_nms(boxes, scores, idxs, dict(type="nms", iou_threshold=0.5,
                                                       split_thr=split_thr))
    expected = tv_batched_nms(boxes, scores, idxs, 0.5)
    assert keep.tolist() == expected.tolist()
    torch.testing.assert_close(dets, torch.cat([boxes[expected], scores[expected, None]], 1))
    # class offsets matter: class-agnostic NMS suppresses across classes
    _, agnostic = batched_nms(boxes, scores, idxs, dict(iou_threshold=0.5, class_agnostic=True))
    assert agnostic.tolist() == tv_nms(boxes, scores, 0.5).tolist()


def test_batched_nms_max_num_and_sort_only():
    from mmcv.ops import batched_nms

    boxes, scores = random_boxes(80, seed=4)
    idxs = torch.zeros(80, dtype=torch.long)
    _, keep = batched_nms(boxes, scores, idxs, dict(iou_threshold=0.5, split_thr=10, max_num=3))
    assert keep.tolist() == tv_nms(boxes, scores, 0.5)[:3].tolist()
    dets, order = batched_nms(boxes, scores, idxs, None)
    assert order.tolist() == scores.argsort(descending=True).tolist()
    assert torch.equal(dets[:, 4], scores.sort(descending=True).values)


def test_batched_nms_names_the_ops_it_cannot_run():
    from mmcv.ops import batched_nms

    boxes, scores = random_boxes(10)
    with pytest.raises(ModuleNotFoundError, match="soft_nms needs a compiled mmcv"):
        batched_nms(boxes, scores, torch.zeros(10), dict(type="soft_nms", iou_threshold=0.3))
    with pytest.raises(ModuleNotFoundError, match="nms_rotated"):
        batched_nms(torch.rand(10, 5), scores, torch.zeros(10), dict(iou_threshold=0.3))


@pytest.mark.parametrize("aligned", [True, False])
def test_roi_align_matches_torchvision_values_and_gradients(aligned):
    from mmcv.ops import RoIAlign

    feats = torch.randn(2, 3, 20, 24, requires_grad=True)
    boxes, _ = random_boxes(12, seed=5, size=80)
    rois = torch.cat([torch.randint(0, 2, (12, 1)).float(), boxes], 1)
    layer = RoIAlign(output_size=7, spatial_scale=0.25, sampling_ratio=2, aligned=aligned)
    out = layer(feats, rois)
    assert layer.output_size == (7, 7) and out.shape == (12, 3, 7, 7)
    out.sum().backward()
    ref_feats = feats.detach().clone().requires_grad_()
    ref = tv_roi_align(ref_feats, rois, (7, 7), 0.25, 2, aligned)
    ref.sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(feats.grad, ref_feats.grad)
    # mmcv's functional form, positional as mmdet's mask structures call it (adaptive sampling)
    from mmcv.ops.roi_align import roi_align

    torch.testing.assert_close(roi_align(feats, rois, (5, 5), 0.25, 0, "avg", aligned),
                               tv_roi_align(feats, rois, (5, 5), 0.25, 0, aligned))
    with pytest.raises(ValueError, match="pool_mode='avg' only"):
        RoIAlign(7, pool_mode="max")


def test_roi_pool_matches_torchvision():
    from mmcv.ops import RoIPool, roi_pool

    feats = torch.randn(1, 4, 16, 16)
    rois = torch.tensor([[0.0, 2.0, 3.0, 40.0, 50.0], [0.0, 10.0, 10.0, 30.0, 20.0]])
    torch.testing.assert_close(RoIPool(3, 0.25)(feats, rois), tv_roi_pool(feats, rois, 3, 0.25))
    torch.testing.assert_close(roi_pool(feats, rois, (2, 4), 0.5),
                               tv_roi_pool(feats, rois, (2, 4), 0.5))


def test_pure_mmcv_lite_modules_are_used_as_they_are():
    import mmcv
    from mmcv.ops import CornerPool, point_sample
    from mmcv.ops.merge_cells import SumCell

    ops_dir = mmcv.__file__.rsplit("/", 1)[0] + "/ops/"
    for obj in (CornerPool, SumCell, point_sample):
        assert sys.modules[obj.__module__].__file__.startswith(ops_dir)
    x = torch.randn(1, 2, 5, 6)
    expected = x.flip(3).cummax(3).values.flip(3)  # 'left' pooling: max over the right part
    torch.testing.assert_close(CornerPool("left")(x), expected)


def test_compiled_ops_import_but_raise_naming_the_op_when_built_or_called():
    from mmcv.ops import CARAFEPack, MaskedConv2d, nms_match
    from mmcv.ops.carafe import CARAFEPack as from_submodule

    assert from_submodule is CARAFEPack  # one placeholder per name

    class Subclass(MaskedConv2d):  # mmdet subclasses some of them at import time
        pass

    with pytest.raises(ModuleNotFoundError, match=r"mmcv\.ops\.CARAFEPack needs a compiled"):
        CARAFEPack(16, 2)
    with pytest.raises(ModuleNotFoundError, match="MaskedConv2d"):
        Subclass(3, 3, 3)
    with pytest.raises(ModuleNotFoundError, match="nms_match") as err:
        nms_match(torch.rand(3, 5), 0.5)
    assert "batched_nms" in str(err.value) and "RoIAlign" in str(err.value)  # what exists
    with pytest.raises(ImportError):
        from mmcv.ops import NotAnOp  # noqa: F401  (not an mmcv name at all)


MMDET_IMPORTS = textwrap.dedent(
    """
    import seg_sparse
    from mmcv.ops import (nms, batched_nms, RoIAlign, roi_align, RoIPool, CornerPool,
                          CARAFEPack, MaskedConv2d, nms_match, deform_conv2d,
                          rel_roi_point_to_rel_img_point, MultiScaleDeformableAttention)
    from mmcv.ops.nms import batched_nms
    from mmcv.ops.roi_align import roi_align
    from mmcv.ops.merge_cells import GlobalPoolingCell, SumCell, ConcatCell
    from mmcv.ops.carafe import CARAFEPack
    from mmcv.ops import modulated_deform_conv, deform_conv
    import mmdet.apis, mmdet.evaluation, mmdet.models, mmseg.models
    from mmdet.registry import MODELS
    print("imported", MODELS.get("FasterRCNN").__name__)
    """
)


def test_mmdet_and_mmseg_import_with_the_fallback():
    """mmseg imports mmdet's heads, so the fallback must be in place before either."""
    result = subprocess.run([sys.executable, "-c", MMDET_IMPORTS], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "imported FasterRCNN" in result.stdout


def test_ops_module_is_the_one_mmcv_ops_exposes():
    from mmcv import ops

    assert ops.batched_nms is detection_ops.batched_nms
    assert ops.RoIAlign is detection_ops.RoIAlign
