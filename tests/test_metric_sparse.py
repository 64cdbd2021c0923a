"""SparseIoUMetric / SparseFlopsHook: mIoU, GFLOPs and per-block densities in one result."""

import logging
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import HOOKS, METRICS, MODELS
from mmseg.structures import SegDataSample

from seg_sparse.flops import count_flops

SHAPE = (32, 64)
BLOCKS = [f"layer{i}.{j}" for i, n in enumerate((3, 4, 6, 3), 1) for j in range(n)]


@pytest.fixture(scope="module")
def sparse_model():
    init_default_scope("mmseg")
    torch.manual_seed(0)
    return MODELS.build(dict(
        type="SparseEncoderDecoder",
        backbone=dict(type="SparseResNetV1c", depth=50, base_channels=8, stem_channels=8,
                      dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), contract_dilation=True,
                      sampler="stochastic"),
        decode_head=dict(type="FCNHead", in_channels=256, in_index=3, channels=16, num_convs=1,
                         num_classes=3),
    )).eval()


def sample(pred, gt, d1, d2, shape=SHAPE):
    """A prediction as SparseEncoderDecoder.predict() returns it."""
    s = SegDataSample(metainfo=dict(sampling_densities={b: (d1, d2) for b in BLOCKS},
                                    sampling_input_shape=shape, img_path="x.png"))
    s.pred_sem_seg = PixelData(data=torch.tensor(pred)[None])
    s.gt_sem_seg = PixelData(data=torch.tensor(gt)[None])
    return s


def make_metric():
    init_default_scope("mmseg")
    metric = METRICS.build(dict(type="SparseIoUMetric", iou_metrics=["mIoU"]))
    metric.dataset_meta = dict(classes=("road", "car", "sky"))
    return metric


@contextmanager
def mm_log_records():
    """Records logged through mmengine's current MMLogger (it calls only its own handlers)."""
    logger = MMLogger.get_current_instance()
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    logger.addHandler(handler)
    level = logger.level  # an earlier Runner may have left the current logger at WARNING
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.setLevel(level)
        logger.removeHandler(handler)


# two 2x2 images: image 1 all right; image 2 predicts class 0 where class 1 is
IMAGES = [([[0, 1], [2, 2]], [[0, 1], [2, 2]], 0.6, 0.2),
          ([[0, 0], [2, 2]], [[0, 1], [2, 2]], 0.2, 0.4)]
# road: I=2, U=3; car: I=1, U=2; sky: I=4, U=4 -> mIoU = (2/3 + 1/2 + 1) / 3
EXPECTED_MIOU = round((2 / 3 + 1 / 2 + 1) / 3 * 100, 2)


def test_metric_reports_miou_gflops_and_mean_densities(sparse_model):
    metric = make_metric()
    evaluator = Evaluator([metric])
    # SparseFlopsHook hands the unwrapped model over before testing
    hook = HOOKS.build(dict(type="SparseFlopsHook"))
    runner = SimpleNamespace(model=sparse_model,
                             test_loop=SimpleNamespace(evaluator=evaluator))
    hook.before_test(runner)
    for pred, gt, d1, d2 in IMAGES:
        evaluator.process([sample(pred, gt, d1, d2)], data_batch={})  # as the test loop does
    with mm_log_records() as records:
        metrics = evaluator.evaluate(len(IMAGES))

    assert metrics["mIoU"] == pytest.approx(EXPECTED_MIOU)
    assert metrics["sampling_densities"] == {b: [pytest.approx(0.4), pytest.approx(0.3)]
                                             for b in BLOCKS}
    assert metrics["density_mean"] == pytest.approx(0.35)
    expected = count_flops(sparse_model, SHAPE, {b: (0.4, 0.3) for b in BLOCKS})
    assert metrics["gflops_backbone_dense"] == pytest.approx(expected.backbone_dense)
    assert metrics["gflops_head"] == pytest.approx(expected.head_gflops)
    assert metrics["gflops_total_dense"] == pytest.approx(expected.total_dense)
    assert metrics["gflops_backbone_sparse"] == pytest.approx(expected.backbone_sparse)
    assert metrics["gflops_total_sparse"] == pytest.approx(expected.total_sparse)
    assert metrics["gflops_total_sparse"] < 0.7 * metrics["gflops_total_dense"]
    # one logged table with the blocks, the GFLOPs and the accuracy
    table = next(r.getMessage() for r in records if "GFLOPs executed" in r.getMessage())
    assert "layer3.5" in table and "mIoU" in table and "0.400" in table
    # results are reset for the next evaluation, and the IoU results keep mmseg's format
    assert metric.results == [] and metric.sampling_records == []


def test_densities_follow_the_gathered_results(sparse_model):
    """collect_results drops the sampler's padding (size < processed): densities align."""
    metric = make_metric()
    metric.set_flops_model(sparse_model)
    for pred, gt, d1, d2 in IMAGES + [([[1, 1], [1, 1]], [[0, 1], [2, 2]], 1.0, 1.0)]:
        metric.process({}, [sample(pred, gt, d1, d2).to_dict()])
    assert all(len(r) == 4 for r in metric.results)  # mmseg's IoU tuples, untouched
    metrics = metric.evaluate(2)
    assert metrics["mIoU"] == pytest.approx(EXPECTED_MIOU)
    assert metrics["density_mean"] == pytest.approx(0.35)


def test_without_model_reports_densities_and_warns():
    metric = make_metric()
    for pred, gt, d1, d2 in IMAGES:
        metric.process({}, [sample(pred, gt, d1, d2).to_dict()])
    with mm_log_records() as records:
        metrics = metric.evaluate(2)
    assert "mIoU" in metrics and metrics["density_mean"] == pytest.approx(0.35)
    assert not any(k.startswith("gflops") for k in metrics)
    assert any("SparseFlopsHook" in r.getMessage() and r.levelno == logging.WARNING
               for r in records)


def test_dense_model_without_densities_reports_dense_gflops():
    """Plain mmseg models attach no densities: only the dense GFLOPs (at batch_input_shape)."""
    init_default_scope("mmseg")
    model = MODELS.build(dict(
        type="EncoderDecoder",
        backbone=dict(type="ResNetV1c", depth=50, base_channels=8, stem_channels=8,
                      dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1)),
        decode_head=dict(type="FCNHead", in_channels=256, in_index=3, channels=16, num_convs=1,
                         num_classes=3),
    )).eval()
    metric = make_metric()
    metric.set_flops_model(model)
    s = SegDataSample(metainfo=dict(batch_input_shape=SHAPE, img_path="x.png"))
    s.pred_sem_seg = PixelData(data=torch.zeros(1, 2, 2, dtype=torch.long))
    s.gt_sem_seg = PixelData(data=torch.zeros(1, 2, 2, dtype=torch.long))
    metric.process({}, [s.to_dict()])
    metrics = metric.evaluate(1)
    assert metrics["gflops_total_dense"] == pytest.approx(count_flops(model, SHAPE).total_dense)
    assert "gflops_total_sparse" not in metrics and "sampling_densities" not in metrics


def test_cityscapes_metric_variant(tmp_path, sparse_model):
    """SparseCityscapesMetric: the official evaluation's scores plus GFLOPs and densities."""
    import numpy as np
    from PIL import Image

    from seg_sparse.data import generate_synthetic_cityscapes

    generate_synthetic_cityscapes(tmp_path / "cs", num_train=0, num_val=1, height=32,
                                  width=64, show_progress=False)
    label = next((tmp_path / "cs/gtFine/val").rglob("*_labelTrainIds.png"))
    image = next((tmp_path / "cs/leftImg8bit/val").rglob("*.png"))
    train_ids = torch.from_numpy(np.array(Image.open(label)).astype(np.int64))
    init_default_scope("mmseg")
    metric = METRICS.build(dict(type="SparseCityscapesMetric", output_dir=str(tmp_path / "out"),
                                quiet=True))
    metric.dataset_meta = dict(classes=tuple(str(i) for i in range(19)))
    metric.set_flops_model(sparse_model)
    s = SegDataSample(metainfo=dict(sampling_densities={b: (0.5, 0.5) for b in BLOCKS},
                                    sampling_input_shape=SHAPE, img_path=str(image),
                                    seg_map_path=str(label)))
    s.pred_sem_seg = PixelData(data=train_ids[None])
    metric.process({}, [s.to_dict()])
    metrics = metric.evaluate(1)
    assert metrics["averageScoreClasses"] == pytest.approx(1.0)  # prediction = ground truth
    assert metrics["density_mean"] == pytest.approx(0.5)
    assert metrics["gflops_total_sparse"] < metrics["gflops_total_dense"]


def _dist_worker(rank, world, port, out):
    """One rank of a 2-process gloo evaluation (mp.spawn target)."""
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        metric = make_metric()
        # DefaultSampler interleaves: rank r gets images r, r + 2; image 3 is padding
        for i in range(rank, 4, world):
            d = 0.1 * (i + 1)
            metric.process({}, [sample([[0, 1], [2, 2]], [[0, 1], [2, 2]], d, d / 2).to_dict()])
        metrics = metric.evaluate(3)
        torch.save(metrics, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_densities_are_gathered_across_ranks(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "metrics")
    # fork: the workers inherit the imported toolkit (spawn would re-import it, ~10 s)
    mp.start_processes(_dist_worker, args=(2, port, out), nprocs=2, start_method="fork")
    for rank in (0, 1):  # every rank gets rank 0's result (broadcast)
        metrics = torch.load(f"{out}.{rank}", weights_only=False)
        # images 0, 1, 2 (d1 = 0.1, 0.2, 0.3); the padded image 3 is dropped
        assert metrics["sampling_densities"]["layer1.0"] == [pytest.approx(0.2),
                                                             pytest.approx(0.1)]
        assert metrics["density_mean"] == pytest.approx(0.15)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_logits_stop_the_metric_naming_the_image(bad):
    """NaN logits still have an argmax; the metric used to score them (mIoU 2.24 from a NaN
    checkpoint) instead of saying so."""
    from seg_sparse.evaluation import NonFiniteOutputError

    metric = make_metric()
    good = sample(*IMAGES[0])
    good.seg_logits = PixelData(data=torch.zeros(3, 2, 2))
    broken = sample(*IMAGES[1])
    broken.set_metainfo(dict(img_path="frankfurt_000000_000294_leftImg8bit.png"))
    logits = torch.zeros(3, 2, 2)
    logits[1, 0, 1] = bad
    broken.seg_logits = PixelData(data=logits)
    evaluator = Evaluator([metric])
    evaluator.process([good], data_batch={})
    with pytest.raises(NonFiniteOutputError) as err:
        evaluator.process([broken], data_batch={})
    assert str(err.value).startswith("the model's seg_logits for image "
                                     "'frankfurt_000000_000294_leftImg8bit.png' hold NaN or "
                                     "infinite values")
    assert len(metric.results) == 1  # the broken image was not scored
