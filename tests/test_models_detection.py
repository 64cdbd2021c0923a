"""Detection backbones and detector: the segmentation block class, mmdet's parameter names,
checkpoints, FLOPs against mmengine, the paper's GFLOPs, and the sparsity loss."""

from __future__ import annotations

import seg_sparse  # noqa: F401, I001  # isort: skip  (mmcv.ops fallback before mmdet)
import pytest
import torch
import torchvision
from mmdet.models.backbones import ResNet, ResNeXt
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from test_flops import mmengine_ops

from seg_sparse.apis.task import detection_test_shape
from seg_sparse.flops import count_flops
from seg_sparse.flops.meta import count_flops_on_meta
from seg_sparse.models import SparseDetResNet, SparseDetResNeXt, SparseResNetV1c
from seg_sparse.sampling import SparseBottleneck, sparse_blocks

SAMPLING = ("mask1.", "mask2.", "interp1.", "interp2.", "temperature.")
OFFSET = "conv2_offset."
DCN = dict(dcn=dict(type="DCN", deform_groups=1, fallback_on_stride=False),
           stage_with_dcn=(False, True, True, True))
NARROW = dict(depth=50, base_channels=8)


@pytest.fixture(autouse=True)
def _quiet_init_logs() -> None:
    MMLogger.get_current_instance().setLevel("WARNING")


def new_keys(keys) -> set[str]:
    """Block-relative suffix kinds of keys that only the sparse backbone has."""
    return {"sampling" if any(p in k for p in SAMPLING) else "offset" if OFFSET in k else k
            for k in keys}


def test_detection_backbone_uses_the_segmentation_block_class():
    det = SparseDetResNet(**NARROW)
    seg = SparseResNetV1c(depth=50, base_channels=8, stem_channels=8)
    det_blocks = {type(b) for _, b in sparse_blocks(det)}
    assert det_blocks == {type(b) for _, b in sparse_blocks(seg)} == {SparseBottleneck}
    assert len(list(sparse_blocks(det))) == 16
    # the paper's detection layout: 7x7 stem, strides 1,2,2,2, no dilation, DCN in conv3-conv5
    assert det.conv1.kernel_size == (7, 7)
    assert [det.layer1[0].stride, det.layer2[0].stride, det.layer3[0].stride,
            det.layer4[0].stride] == [1, 2, 2, 2]
    assert {b.dilation for _, b in sparse_blocks(det)} == {1}
    assert [b.with_dcn for b in (det.layer1[0], det.layer2[0], det.layer4[2])] == [
        False, True, True]
    assert {(b.grid_interval, b.interp1.window) for _, b in sparse_blocks(det)} == {(11, 7)}
    x = torch.randn(1, 3, 64, 96)
    assert [o.shape[1:] for o in det(x)] == [(32, 16, 24), (64, 8, 12), (128, 4, 6),
                                             (256, 2, 3)]


def test_detection_backbones_take_the_execution_mode_and_train_returns_the_module():
    det = SparseDetResNeXt(**NARROW, groups=2, base_width=4, execution="masked")
    assert {b.execution for _, b in sparse_blocks(det)} == {"masked"}
    assert det.train() is det and det.eval() is det  # mmdet's train() returns None
    seg = SparseResNetV1c(depth=50, base_channels=8, stem_channels=8)
    assert seg.train(False) is seg
    with pytest.raises(ValueError, match="execution must be one of .* got 'fast'"):
        SparseDetResNet(**NARROW, execution="fast")


@pytest.mark.parametrize("arch", ["resnet", "resnext"])
def test_parameter_names_equal_mmdets_and_its_checkpoints_load(arch, tmp_path):
    torch.manual_seed(0)
    if arch == "resnet":
        reference, sparse = ResNet(**NARROW, **DCN), SparseDetResNet(**NARROW)
    else:
        kw = dict(groups=4, base_width=2, **NARROW)
        reference, sparse = ResNeXt(**kw, **DCN), SparseDetResNeXt(**kw)
    ours = sparse.state_dict()
    theirs = reference.state_dict()
    # mmdet's DCN pack predicts offsets from conv1's output (conv2.conv_offset), ours from the
    # block input (conv2_offset): the only keys that differ besides the sampling layers
    theirs_kept = {k: v for k, v in theirs.items() if ".conv_offset." not in k}
    assert new_keys(set(ours) - set(theirs_kept)) == {"sampling", "offset"}
    assert set(theirs_kept) <= set(ours)
    assert all(ours[k].shape == v.shape for k, v in theirs_kept.items())

    path = tmp_path / "mmdet_resnet.pth"
    torch.save({"state_dict": theirs_kept}, path)
    cls = SparseDetResNet if arch == "resnet" else SparseDetResNeXt
    extra = {} if arch == "resnet" else dict(groups=4, base_width=2)
    loaded = cls(**NARROW, **extra, init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    loaded.init_weights()
    for key, value in theirs_kept.items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    block = loaded.layer3[1]  # new layers keep the sampling init: p = sigmoid(3), offsets 0
    assert block.mask1.conv.bias.item() == 3.0 and not block.conv2_offset.weight.any()


def test_imagenet_checkpoint_keys_fit_with_only_sampling_and_offset_missing():
    imagenet = torchvision.models.resnet101(weights=None).state_dict()  # the keys of R-101
    model = SparseDetResNet(depth=101)
    ours = model.state_dict()
    assert set(imagenet) - set(ours) == {"fc.weight", "fc.bias"}
    assert new_keys(set(ours) - set(imagenet)) == {"sampling", "offset"}
    assert all(ours[k].shape == imagenet[k].shape for k in imagenet if k in ours)


def test_dense_detection_backbone_flops_agree_with_mmengine():
    torch.manual_seed(0)
    backbone = SparseDetResNet(**NARROW, sampler="dense").eval()
    report = count_flops(backbone, (32, 64))
    _, ops = mmengine_ops(backbone)
    assert report.backbone_dense_macs == ops["conv"] + ops["deform_conv2d"]
    assert all(b.role("offset") > 0 for b in report.blocks if b.name >= "layer2")
    assert report.head == 0  # a bare backbone: the detection convention counts only it


@pytest.mark.parametrize("sampler", ["dense", "stochastic"])
def test_meta_device_count_equals_the_real_one(sampler, monkeypatch):
    from seg_sparse.flops import meta

    counted_on = []
    real_count = meta.count_flops
    monkeypatch.setattr(meta, "count_flops", lambda model, *a, **k: (
        counted_on.append(next(model.parameters()).device.type), real_count(model, *a, **k))[1])
    backbone = SparseDetResNet(**NARROW, sampler=sampler).eval()
    assert count_flops_on_meta(backbone, (64, 96)) == count_flops(backbone, (64, 96))
    # measured on the meta device, DCN included (the taps need values: torchvision's shape
    # function runs there), not on the real model after a fallback (55 s for R-101)
    assert counted_on == ["meta"]
    assert next(backbone.parameters()).device.type == "cpu"  # the model is left alone


def test_paper_gflops_of_the_dense_resnet101_backbone():
    """The paper's uniform-sampling figure for R-101 at short side 1000 is 289.5 GFLOPs."""
    root = "configs/faster_rcnn_dcn/faster-rcnn_r101-dcn_fpn_8xb1-1x_coco"
    sizes = {}
    for suffix in ("", "-uniform800", "-uniform600", "-uniform500"):
        sizes[suffix] = detection_test_shape(Config.fromfile(f"{root}{suffix}.py"))
    assert sizes == {"": (992, 1664), "-uniform800": (800, 1312), "-uniform600": (576, 992),
                     "-uniform500": (480, 832)}
    report = count_flops_on_meta(SparseDetResNet(depth=101, sampler="dense").eval(),
                                 (992, 1664))
    assert round(report.backbone_dense, 1) == 289.5


def tiny_detector(sampler: str = "stochastic"):
    init_default_scope("mmdet")
    cfg = Config.fromfile(
        "configs/cpu/sparse-faster-rcnn_r50-dcn-w16_fpn_1xb2-300i_synthcoco-128x256_w0.1.py")
    cfg.model.backbone.update(base_channels=8, sampler=sampler)
    cfg.model.neck.update(in_channels=[32, 64, 128, 256], out_channels=16)
    cfg.model.rpn_head.update(in_channels=16, feat_channels=16)
    cfg.model.roi_head.bbox_roi_extractor.out_channels = 16
    cfg.model.roi_head.bbox_head.update(in_channels=16, fc_out_channels=32)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def samples(n: int, shape=(64, 96)) -> list[DetDataSample]:
    out = []
    for _ in range(n):
        s = DetDataSample(metainfo=dict(img_shape=shape, batch_input_shape=shape, pad_shape=shape,
                                        ori_shape=shape, scale_factor=(1.0, 1.0)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[4.0, 6.0, 30.0, 40.0]]),
                                      labels=torch.tensor([2]))
        out.append(s)
    return out


def test_detector_adds_sparsity_loss_and_logs_density_and_temperature():
    model = tiny_detector()
    model.train()
    x = torch.randn(2, 3, 64, 96)
    losses = model.loss(x, samples(2))
    # p = sigmoid(3) everywhere at the start: loss = 0.1 * (0.25 + 0.75) * sigmoid(3)
    expected = 0.1 * torch.sigmoid(torch.tensor(3.0))
    torch.testing.assert_close(losses["loss_sparse"], expected)
    assert {"loss_rpn_cls", "loss_cls", "loss_bbox", "density", "temperature"} <= set(losses)
    total, log = model.parse_losses(losses)
    assert "density" in log and total.requires_grad
    total.backward()
    assert model.backbone.layer2[0].mask2.conv.weight.grad.abs().sum() > 0
    dense = tiny_detector("dense")
    dense.train()
    assert "loss_sparse" not in dense.loss(x, samples(2))


def test_detector_predictions_carry_densities_and_input_shape():
    model = tiny_detector().eval()
    with torch.no_grad():
        results = model.predict(torch.randn(2, 3, 64, 96), samples(2))
    for sample in results:
        densities = sample.metainfo["sampling_densities"]
        assert sample.metainfo["sampling_input_shape"] == (64, 96)
        assert len(densities) == 16 and all(0 < d <= 1 for pair in densities.values()
                                            for d in pair)
        assert "bboxes" in sample.pred_instances
