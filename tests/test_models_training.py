"""Training a sparse segmentor with mmengine's Runner on generated street scenes.

One short run (12 iterations, high sparsity weight) checks that the masks get sparser, that
``loss_sparse`` / ``density`` / ``temperature`` reach the logs and that the temperature follows
the schedule to T_final; a second run resumes it from its iteration-6 checkpoint and must
continue the schedule exactly.
"""

from __future__ import annotations

import seg_sparse  # noqa: F401, I001  # isort: skip  (mmcv.ops fallback before mmseg)
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from seg_sparse.data import generate_synthetic_cityscapes
from seg_sparse.sampling import sparse_blocks

MAX_ITERS = 12
T0, T_FINAL = 1.0, 0.01
BN = dict(type="BN", requires_grad=True)


@HOOKS.register_module(force=True)
class _RecordSamplingHook(Hook):
    """Records, per iteration, the temperature the forward ran at and the logged outputs."""

    priority = "LOW"  # after SparseTemperatureHook (NORMAL) in before_train_iter

    def __init__(self) -> None:
        self.temperatures: dict[int, float] = {}
        self.outputs: dict[int, dict[str, float]] = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        (_, block), *_ = sparse_blocks(runner.model)
        self.temperatures[runner.iter] = float(block.temperature.value)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.outputs[runner.iter] = {k: float(v) for k, v in outputs.items()}


def _config(data_root: Path, work_dir: Path, resume_from: Path | None = None) -> Config:
    pipeline = [
        dict(type="LoadImageFromFile"),
        dict(type="LoadAnnotations"),
        dict(type="RandomCrop", crop_size=(32, 64)),
        dict(type="PackSegInputs"),
    ]
    return Config(dict(
        default_scope="mmseg",
        work_dir=str(work_dir),
        model=dict(
            type="SparseEncoderDecoder",
            sparse_loss_weight=10.0,  # high, so a dozen iterations visibly sparsify
            data_preprocessor=dict(type="SegDataPreProcessor", mean=[123.675, 116.28, 103.53],
                                   std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
                                   size=(32, 64)),
            backbone=dict(type="SparseResNetV1c", sampler="stochastic", depth=50,
                          stem_channels=8, base_channels=4, strides=(1, 2, 1, 1),
                          dilations=(1, 1, 2, 4), contract_dilation=True, norm_cfg=BN,
                          t0=T0, t_final=T_FINAL,
                          max_iters=1000),  # the hook must re-target this to MAX_ITERS
            decode_head=dict(type="FCNHead", in_channels=128, in_index=3, channels=16,
                             num_convs=1, concat_input=False, num_classes=19, norm_cfg=BN,
                             loss_decode=dict(type="CrossEntropyLoss", loss_weight=1.0)),
            train_cfg=dict(), test_cfg=dict(mode="whole")),
        train_dataloader=dict(
            batch_size=2, num_workers=0,
            sampler=dict(type="InfiniteSampler", shuffle=True),
            dataset=dict(type="CityscapesDataset", data_root=str(data_root),
                         data_prefix=dict(img_path="leftImg8bit/train",
                                          seg_map_path="gtFine/train"),
                         pipeline=pipeline)),
        optim_wrapper=dict(type="OptimWrapper",
                           optimizer=dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=1e-4)),
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=MAX_ITERS, val_interval=10**6),
        default_hooks=dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=1, log_metric_by_epoch=False),
            param_scheduler=dict(type="ParamSchedulerHook"),
            checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=MAX_ITERS // 2)),
        custom_hooks=[dict(type="SafeCheckpointHook"), dict(type="SparseTemperatureHook"),
                      dict(type="_RecordSamplingHook")],
        log_processor=dict(by_epoch=False, window_size=1),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo")),
        randomness=dict(seed=0),
        log_level="INFO",
        load_from=str(resume_from) if resume_from else None,
        resume=resume_from is not None,
    ))


def _train(cfg: Config) -> tuple[Runner, _RecordSamplingHook]:
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    runner.train()
    (recorder,) = [h for h in runner.hooks if isinstance(h, _RecordSamplingHook)]
    return runner, recorder


def _schedule(iteration: int) -> float:
    return T0 * (T_FINAL / T0) ** (iteration / MAX_ITERS)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("sparse_training")
    data_root = tmp / "synthcity"
    generate_synthetic_cityscapes(data_root, num_train=6, num_val=1, height=64, width=128,
                                  seed=0, show_progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model is faster single-threaded on a shared machine
    try:
        runner, recorder = _train(_config(data_root, tmp / "run"))
    finally:
        torch.set_num_threads(threads)  # process-wide: leave it as other tests expect it
    return data_root, tmp, runner, recorder


def test_high_sparsity_weight_lowers_the_density_and_logs_loss_sparse(trained) -> None:
    _, tmp, runner, recorder = trained
    densities = [recorder.outputs[i]["density"] for i in range(MAX_ITERS)]
    before, after = sum(densities[:2]) / 2, sum(densities[-2:]) / 2

    assert before > 0.8  # masks start almost dense (p = sigmoid(3) = 0.95)
    assert after < before - 0.2, densities
    assert recorder.outputs[MAX_ITERS - 1]["loss_sparse"] < recorder.outputs[0]["loss_sparse"]
    log_text = "".join(p.read_text() for p in (tmp / "run").glob("*/*.log"))
    for key in ("loss_sparse:", "density:", "temperature:"):
        assert key in log_text


def test_temperature_follows_the_runner_schedule_to_t_final(trained) -> None:
    _, _, runner, recorder = trained

    for i in range(MAX_ITERS):
        assert recorder.temperatures[i] == pytest.approx(_schedule(i), rel=1e-5), i
        assert recorder.outputs[i]["temperature"] == pytest.approx(_schedule(i), rel=1e-5)
    for _, block in sparse_blocks(runner.model):
        assert block.temperature.max_iters == MAX_ITERS  # re-targeted from the config's 1000
        assert float(block.temperature.value) == pytest.approx(T_FINAL, rel=1e-6)


def test_resumed_run_continues_the_temperature_schedule_exactly(trained) -> None:
    data_root, tmp, _, first = trained
    checkpoint = tmp / "run" / f"iter_{MAX_ITERS // 2}.pth"
    assert checkpoint.is_file()

    runner, resumed = _train(_config(data_root, tmp / "resumed", resume_from=checkpoint))

    assert sorted(resumed.temperatures) == list(range(MAX_ITERS // 2, MAX_ITERS))
    for i, value in resumed.temperatures.items():
        assert value == pytest.approx(first.temperatures[i], rel=1e-6), i
    (_, block), *_ = sparse_blocks(runner.model)
    assert float(block.temperature.value) == pytest.approx(T_FINAL, rel=1e-6)
