"""SparseEncoderDecoder: the sparsity loss and its logs, and the densities predict() attaches."""

from __future__ import annotations

import seg_sparse  # noqa: F401, I001  # isort: skip  (mmcv.ops fallback before mmseg)
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.logging import MMLogger
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

from seg_sparse.models.segmentors import DENSITIES_KEY, INPUT_SHAPE_KEY
from seg_sparse.sampling import sparse_blocks

BLOCK_NAMES = [f"layer{s + 1}.{i}" for s, n in enumerate((3, 4, 6, 3)) for i in range(n)]
H, W = 32, 64


def tiny_segmentor(sampler: str = "stochastic", weight: float = 1.0, **test_cfg) -> torch.nn.Module:
    """Dilated ResNetV1c-50 FCN at 1/16 width (DCN in conv3-conv5), BN, 19 classes."""
    register_all_modules()
    bn = dict(type="BN", requires_grad=True)
    cfg = dict(
        type="SparseEncoderDecoder",
        sparse_loss_weight=weight,
        data_preprocessor=dict(type="SegDataPreProcessor", mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
        backbone=dict(type="SparseResNetV1c", sampler=sampler, depth=50, stem_channels=8,
                      base_channels=4, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                      contract_dilation=True, norm_cfg=bn,
                      dcn=dict(type="DCN", deform_groups=1, fallback_on_stride=False),
                      stage_with_dcn=(False, True, True, True)),
        decode_head=dict(type="FCNHead", in_channels=128, in_index=3, channels=16, num_convs=1,
                         concat_input=False, num_classes=19, norm_cfg=bn,
                         loss_decode=dict(type="CrossEntropyLoss", loss_weight=1.0)),
        auxiliary_head=dict(type="FCNHead", in_channels=64, in_index=2, channels=8,
                            num_convs=1, concat_input=False, num_classes=19, norm_cfg=bn,
                            loss_decode=dict(type="CrossEntropyLoss", loss_weight=0.4)),
        train_cfg=dict(),
        test_cfg=dict(mode="whole", **test_cfg))
    MMLogger.get_current_instance().setLevel("WARNING")
    model = MODELS.build(ConfigDict(cfg))
    model.init_weights()
    return model


def randomize_masks(model: torch.nn.Module, seed: int = 0) -> None:
    """Mask logits that vary over the image (a fresh model samples ~95% everywhere)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, block in sparse_blocks(model.backbone):
            for predictor in (block.mask1, block.mask2):
                w = predictor.conv.weight
                w.copy_(torch.randn(w.shape, generator=gen) * 0.3)
                predictor.conv.bias.zero_()


def samples(n: int, h: int = H, w: int = W, seed: int = 0) -> list[SegDataSample]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 19, (1, h, w), generator=gen))
        out.append(s)
    return out


def test_loss_adds_loss_sparse_and_logs_density_and_temperature_outside_the_total() -> None:
    torch.manual_seed(0)
    model = tiny_segmentor(weight=2.0)
    model.train()

    losses = model.loss(torch.randn(2, 3, H, W), samples(2))
    total, log_vars = model.parse_losses(losses)

    assert {"loss_sparse", "density", "temperature"} <= set(losses)
    # Initial bias 3: p = sigmoid(3) everywhere, so the loss is 2.0 * (0.25 + 0.75) * 0.9526.
    p0 = torch.sigmoid(torch.tensor(3.0)).item()
    assert losses["loss_sparse"].item() == pytest.approx(2.0 * p0, rel=1e-4)
    assert 0.5 < log_vars["density"].item() < 1.0  # soft Gumbel-sigmoid masks at T = 1
    assert log_vars["temperature"].item() == pytest.approx(1.0)
    task_and_sparse = sum(v for k, v in losses.items() if k.endswith("loss_ce")) \
        + losses["loss_sparse"]
    assert total.item() == pytest.approx(task_and_sparse.item(), rel=1e-6)
    total.backward()
    block = model.backbone.layer3[1]
    assert block.mask2.conv.bias.grad is not None and block.mask2.conv.bias.grad.item() > 0


def test_dense_model_has_no_sparsity_loss() -> None:
    model = tiny_segmentor(sampler="dense")
    model.train()
    losses = model.loss(torch.randn(1, 3, H, W), samples(1))
    assert not {"loss_sparse", "density", "temperature"} & set(losses)


@pytest.mark.parametrize("sampler", ["stochastic", "deterministic", "relu", "dense"])
def test_predict_attaches_a_density_in_0_1_for_every_block(sampler: str) -> None:
    torch.manual_seed(0)
    model = tiny_segmentor(sampler=sampler)
    if sampler != "dense":
        randomize_masks(model)
    model.eval()

    with torch.no_grad():
        results = model.predict(torch.randn(2, 3, H, W), samples(2))

    for sample in results:
        densities = sample.metainfo[DENSITIES_KEY]
        assert sample.metainfo[INPUT_SHAPE_KEY] == (H, W)
        assert list(densities) == BLOCK_NAMES
        values = [d for pair in densities.values() for d in pair]
        assert all(isinstance(d, float) and 0.0 <= d <= 1.0 for d in values)
        if sampler == "dense":
            assert set(values) == {1.0}
        else:
            assert 0.05 < sum(values) / len(values) < 0.95
    if sampler != "dense":  # per image: two random images do not sample alike
        assert results[0].metainfo[DENSITIES_KEY] != results[1].metainfo[DENSITIES_KEY]


def test_slide_inference_averages_densities_over_crops_by_area() -> None:
    torch.manual_seed(0)
    whole = tiny_segmentor(sampler="deterministic")
    randomize_masks(whole)
    slide = tiny_segmentor(sampler="deterministic", crop_size=(H, W // 2), stride=(H, W // 2))
    slide.load_state_dict(whole.state_dict())
    slide.test_cfg.mode = "slide"
    whole.eval()
    slide.eval()
    image = torch.randn(1, 3, H, W)

    with torch.no_grad():
        both = slide.predict(image, samples(1))[0].metainfo[DENSITIES_KEY]
        left = whole.predict(image[..., : W // 2], samples(1, w=W // 2))[0]
        right = whole.predict(image[..., W // 2:], samples(1, w=W // 2))[0]

    for name in BLOCK_NAMES:
        for k in range(2):
            expected = (left.metainfo[DENSITIES_KEY][name][k]
                        + right.metainfo[DENSITIES_KEY][name][k]) / 2
            assert both[name][k] == pytest.approx(expected, abs=1e-9)


def test_predict_without_data_samples_still_reports_densities() -> None:
    model = tiny_segmentor()
    model.eval()
    with torch.no_grad():
        (result,) = model.predict(torch.randn(1, 3, H, W))
    assert result.metainfo[INPUT_SHAPE_KEY] == (H, W)
    assert len(result.metainfo[DENSITIES_KEY]) == len(BLOCK_NAMES)


def test_negative_loss_weight_is_refused() -> None:
    with pytest.raises(ValueError, match="sparse_loss_weight"):
        tiny_segmentor(weight=-0.1)
