"""``seg-sparse test`` speaks mmseg's test.py (--out, --show-dir, --tta): the options' config
changes, the test-time augmentation and its GFLOPs, the refusals; and ``--out`` spellings of
the other commands. The end-to-end runs are in test_runner_cli.py / test_detection_commands.py.
"""

from __future__ import annotations

import seg_sparse  # noqa: F401, I001  # isort: skip  (mmcv.ops fallback before mmseg)
import argparse
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.structures import BaseDataElement
from test_models_segmentor import tiny_segmentor

from seg_sparse.cli.main import build_parser, main
from seg_sparse.cli.test import (
    TTA_SCALE_FACTORS,
    segmentation_tta_pipeline,
    trigger_visualization,
    use_tta,
)
from seg_sparse.models.tta import merged_sampling_info

REPO = Path(__file__).resolve().parents[1]
SEG_CONFIG = REPO / "configs/cpu/sparse-fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256_w0.1.py"
DET_CONFIG = (REPO / "configs/cpu"
              / "sparse-faster-rcnn_r50-dcn-w16_fpn_1xb2-300i_synthcoco-128x256_w0.1.py")


def test_derived_tta_scales_the_test_size_flips_and_loads_the_labels(synthcity: Path):
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope

    init_default_scope("mmseg")
    cfg = Config.fromfile(str(SEG_CONFIG))
    pipeline = Compose(segmentation_tta_pipeline(cfg.test_dataloader.dataset.pipeline))
    image = next((synthcity / "leftImg8bit/val").rglob("*.png"))  # 64x128
    label = next((synthcity / "gtFine/val").rglob(
        image.name.replace("leftImg8bit", "gtFine_labelTrainIds")))
    data = pipeline(dict(img_path=str(image), seg_map_path=str(label), reduce_zero_label=False,
                         seg_fields=[]))
    shapes = [tuple(x.shape[1:]) for x in data["inputs"]]
    test_h, test_w = 256, 512  # the config's test Resize
    expected = [(round(test_h * f), round(test_w * f)) for f in TTA_SCALE_FACTORS]
    assert shapes == [s for s in expected for _ in (0, 1)]  # each scale unflipped and flipped
    assert [s.flip for s in data["data_samples"]] == [False, True] * len(TTA_SCALE_FACTORS)
    assert all(s.gt_sem_seg.shape == (64, 128) for s in data["data_samples"])


def test_tta_wraps_the_model_in_the_sparse_tta_models():
    cfg = Config.fromfile(str(SEG_CONFIG))
    model = cfg.model
    use_tta(cfg, detection=False)
    assert cfg.model.type == "SparseSegTTAModel" and cfg.model.module == model
    assert cfg.test_dataloader.dataset.pipeline[-1]["type"] == "TestTimeAug"

    own = [dict(type="LoadImageFromFile"), dict(type="PackSegInputs")]
    cfg = Config.fromfile(str(SEG_CONFIG))
    cfg.tta_model, cfg.tta_pipeline = dict(type="SegTTAModel"), own  # mmseg's names
    use_tta(cfg, detection=False)
    assert cfg.model.type == "SparseSegTTAModel" and cfg.test_dataloader.dataset.pipeline == own

    cfg = Config.fromfile(str(DET_CONFIG))
    use_tta(cfg, detection=True)
    assert cfg.model.type == "SparseDetTTAModel" and "nms" in cfg.model.tta_cfg
    tta = cfg.test_dataloader.dataset.pipeline[-1]
    flips, (pack,) = tta["transforms"]
    assert [f["prob"] for f in flips] == [1.0, 0.0]
    assert {"flip", "flip_direction", "img_id"} <= set(pack["meta_keys"])


def test_show_options_turn_on_mmsegs_visualization_hook():
    cfg = Config.fromfile(str(SEG_CONFIG))
    args = argparse.Namespace(show=True, show_dir="painted", wait_time=0.5)
    trigger_visualization(cfg, args, detection=False)
    hook = cfg.default_hooks.visualization
    assert (hook.draw, hook.show, hook.wait_time, hook.interval) == (True, True, 0.5, 1)
    assert cfg.visualizer.save_dir == "painted"
    cfg = Config.fromfile(str(DET_CONFIG))
    trigger_visualization(cfg, argparse.Namespace(show=False, show_dir="painted",
                                                  wait_time=2), detection=True)
    assert cfg.default_hooks.visualization.test_out_dir == "painted"


def _sample(densities: dict, shape: tuple[int, int]) -> BaseDataElement:
    return BaseDataElement(metainfo=dict(sampling_densities=densities,
                                         sampling_input_shape=shape))


def test_tta_keeps_the_densities_of_every_pass_weighted_by_area():
    augmented = [_sample({"layer1.0": (0.2, 0.4)}, (10, 10)),
                 _sample({"layer1.0": (0.5, 1.0)}, (20, 15))]
    info = merged_sampling_info(augmented)
    assert info["sampling_input_shapes"] == [(10, 10), (20, 15)]
    assert info["sampling_densities"]["layer1.0"] == pytest.approx((0.425, 0.85))  # 100 : 300


def test_the_metric_counts_every_tta_pass():
    from seg_sparse.evaluation import SparseIoUMetric
    from seg_sparse.evaluation.sparse_metric import sampling_record

    metric = SparseIoUMetric()
    metric.set_flops_model(tiny_segmentor().eval())
    one = _sample({}, (32, 64))
    two = _sample({}, (32, 64))
    two.set_metainfo(dict(sampling_input_shapes=[(32, 64), (32, 64), (64, 128)]))
    single, _ = metric._sampling_metrics([sampling_record(one)])
    tta, _ = metric._sampling_metrics([sampling_record(two)])
    assert tta["gflops_total_dense"] == pytest.approx(6 * single["gflops_total_dense"], rel=0.02)


@pytest.mark.parametrize("argv, message", [
    (["--out", "preds.json"], "must end in .pkl"),
    (["--submission-dir", "x"], "not to this detection config"),
])
def test_detection_output_options_that_cannot_apply_are_refused(argv, message, tmp_path,
                                                                capsys):
    rc = main(["test", str(DET_CONFIG), str(SEG_CONFIG), "--work-dir", str(tmp_path), *argv])
    assert rc == 2 and message in capsys.readouterr().err


def test_out_and_submission_dir_in_one_folder_are_refused(tmp_path, capsys):
    same = str(tmp_path / "pred")
    rc = main(["test", str(SEG_CONFIG), str(SEG_CONFIG), "--work-dir", str(tmp_path),
               "--out", same, "--submission-dir", same])
    assert rc == 2 and "give two folders" in capsys.readouterr().err


def test_bench_out_still_works_and_says_out_json_replaces_it(capsys):
    args = build_parser().parse_args(["bench", "--out", "rows.json"])
    assert args.out_json == "rows.json"
    assert "--out is deprecated, use --out-json" in capsys.readouterr().err
    assert build_parser().parse_args(["bench", "--out-json", "r.json"]).out_json == "r.json"
