"""Detection end to end: mmdet's own train / test tools, and every ``seg-sparse`` command on a
detection config. One tiny sparse detector (base width 8, 64x128 images) is trained for 2
iterations by mmdet's ``tools/train.py`` (session fixture); evaluations run on 1-2 images."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from seg_sparse.cli.main import main
from seg_sparse.mmdet_tools import tool_path

pytest_plugins = ("det_support",)


def test_mmdet_train_tool_trains_with_sparsity_loss(trained_detector):
    log = trained_detector.log
    for key in ("loss_sparse", "loss_rpn_cls", "loss_bbox", "density", "temperature"):
        assert re.search(rf"Iter\(train\) \[2/2\].* {key}: [0-9.]+", log), key
    # the validation at the end: COCOeval mAP plus backbone GFLOPs of the sampled model
    val = re.search(r"Iter\(val\) \[2/2\] +coco/bbox_mAP: ([0-9.]+).*"
                    r"coco/gflops_backbone_sparse: ([0-9.]+)", log)
    assert val and 0 <= float(val.group(1)) <= 1 and float(val.group(2)) > 0
    # weights-only loadable: the checkpoint holds plain data only (SafeCheckpointHook)
    checkpoint = torch.load(trained_detector.checkpoint, weights_only=True)
    assert "backbone.layer3.1.mask2.conv.weight" in checkpoint["state_dict"]


def test_mmdet_test_tool_runs_directly_with_the_start_hook(trained_detector, tmp_path):
    from det_support import run_tool

    argv = [str(trained_detector.config), str(trained_detector.checkpoint),
            "--work-dir", str(tmp_path)]
    # mmdet's own tool imports mmdet before the config names seg_sparse: the installed start
    # hook (seg_sparse_mmcv_hook.pth) makes that work. (The launcher, python -m
    # seg_sparse.mmdet_tools, runs the same tool: its training runs are tested below.)
    result = run_tool(str(tool_path("test")), *argv, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (metrics_file,) = tmp_path.glob("*/*.json")
    metrics = json.loads(metrics_file.read_text())
    assert math.isfinite(metrics["coco/bbox_mAP"]) and 0 <= metrics["coco/bbox_mAP"] <= 1
    assert metrics["coco/gflops_backbone_dense"] > 0
    assert len(metrics["coco/sampling_densities"]) == 16


@pytest.mark.slow
def test_mmdet_train_tool_runs_multi_process_on_cpu(synthcoco, tmp_path):
    """mmdet's tools/train.py under torchrun without CUDA: mmengine's own setup fails with
    'Found no NVIDIA driver'; the launcher gives it gloo and the CPU DDP wrapper."""
    import socket

    from det_support import run_tool, small_config

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = tmp_path / "work"
    result = run_tool("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                      str(port), "-m", "seg_sparse.mmdet_tools", "train",
                      str(small_config(tmp_path, synthcoco)), "--launcher", "pytorch",
                      "--work-dir", str(work), "--cfg-options", "env_cfg.dist_cfg.timeout=120",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert re.search(r"Iter\(train\) \[2/2\].* loss_sparse: [0-9.]+", log)
    assert "Distributed launcher: pytorch" in log and "Distributed training: True" in log
    assert (work / "iter_2.pth").is_file()
    assert not (work / ".seg_sparse_train.lock").exists()


def test_launcher_usage_and_unknown_tool(capsys):
    from seg_sparse.mmdet_tools import main as launcher

    assert launcher(["--help"]) == 0 and "python -m seg_sparse.mmdet_tools" in \
        capsys.readouterr().out
    assert launcher(["nonsense"]) == 2
    assert "mmdet has no tool 'nonsense'" in capsys.readouterr().err


def test_seg_sparse_test_on_a_detection_checkpoint(trained_detector, tmp_path, capsys):
    work = tmp_path / "test"
    rc = main(["test", str(trained_detector.config), str(trained_detector.checkpoint),
               "--work-dir", str(work), "--cfg-options", "experiment_name=det_cli_test"])
    assert rc == 0
    report = json.loads((work / "metrics.json").read_text())
    metrics = report["metrics"]
    assert 0 <= metrics["coco/bbox_mAP"] <= 1
    assert metrics["coco/gflops_backbone_sparse"] > 0 and 0 < metrics["coco/density_mean"] <= 1
    assert report["per_class"] == {}
    capsys.readouterr()
    rc = main(["test", str(trained_detector.config), str(trained_detector.checkpoint),
               "--cityscapes-eval"])
    assert rc == 2 and "apply to segmentation configs" in capsys.readouterr().err
    # mmdet's test.py options: --tta (flipped and not: the backbone runs twice), --out a .pkl
    rc = main(["test", str(trained_detector.config), str(trained_detector.checkpoint),
               "--work-dir", str(tmp_path / "tta"), "--tta", "--out", str(tmp_path / "p.pkl"),
               "--cfg-options", "experiment_name=det_cli_tta"])
    assert rc == 0
    tta = json.loads((tmp_path / "tta/metrics.json").read_text())["metrics"]
    assert tta["coco/gflops_backbone_dense"] == pytest.approx(
        2 * metrics["coco/gflops_backbone_dense"])
    assert 0 <= tta["coco/bbox_mAP"] <= 1
    from mmengine.fileio import load

    dumped = load(str(tmp_path / "p.pkl"))
    assert len(dumped) >= 1 and "pred_instances" in dumped[0]


@pytest.mark.slow
def test_seg_sparse_train_accepts_a_detection_config(synthcoco, tmp_path, capsys):
    from det_support import small_config

    config = small_config(tmp_path, synthcoco, sparse=False)
    work = tmp_path / "work"
    rc = main(["train", str(config), "--work-dir", str(work), "--cfg-options",
               "train_cfg.max_iters=1", "train_cfg.val_interval=5",
               "default_hooks.checkpoint.interval=1", "model.backbone.frozen_stages=1",
               "experiment_name=det_cli_train"])
    assert rc == 0 and (work / "iter_1.pth").is_file()
    # a frozen stage without pretrained weights is trained on loudly
    out = capsys.readouterr()
    assert "TRAINING WITHOUT PRETRAINED WEIGHTS" in out.out + out.err
    assert "the stem and stages 1-1 (frozen_stages=1) are never trained" in out.out + out.err


def test_flops_on_detection_configs(trained_detector, tmp_path, capsys):
    out = tmp_path / "flops"
    assert main(["flops", str(trained_detector.config), "--out-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Backbone GFLOPs" in text and "at input 64x128" in text
    # the table says the count is the backbone's only (no "head 0.0000" / total rows)
    assert "| backbone only (FPN and heads not counted) |" in text
    assert "| head " not in text and "| total " not in text
    dense = json.loads((out / "flops.json").read_text())
    assert dense["task"] == "detection" and dense["input_shape"] == [64, 128]
    assert main(["flops", str(trained_detector.config), "--checkpoint",
                 str(trained_detector.checkpoint), "--num-images", "1", "--out-dir",
                 str(out)]) == 0
    measured = json.loads((out / "flops.json").read_text())
    assert measured["metric"] == "mAP" and 0 <= measured["mAP"] <= 100
    assert measured["sparse"]["backbone"] > 0 and measured["num_images"] == 1
    assert "mAP (1 images)" in capsys.readouterr().out


def test_analysis_commands_on_a_detector(trained_detector, tmp_path, capsys):
    config, ckpt = str(trained_detector.config), str(trained_detector.checkpoint)
    common = ["--num-images", "1"]
    assert main(["stability", config, ckpt, "--runs", "2", *common,
                 "--out-dir", str(tmp_path / "st")]) == 0
    stability = json.loads((tmp_path / "st/stability.json").read_text())
    assert [sorted(r)[:3] for r in stability["runs"]][0] == ["gflops_backbone",
                                                              "gflops_backbone_dense",
                                                              "gflops_head"]
    assert "mAP" in stability and stability["runs"][0]["seed"] == 0
    assert stability["gflops_backbone"]["std"] >= 0

    assert main(["sparsity", config, ckpt, *common, "--out-dir", str(tmp_path / "sp")]) == 0
    sparsity = json.loads((tmp_path / "sp/sparsity.json").read_text())["models"][0]
    assert len(sparsity["blocks"]) == 16 and "mAP" in sparsity
    # boxes, no label maps: no boundary / interior measurement, no regions chart
    assert sparsity["regions"] is None and not (tmp_path / "sp/sparsity_regions.png").exists()

    assert main(["prune", config, ckpt, "--ratios", "0.5", *common,
                 "--out-dir", str(tmp_path / "pr")]) == 0
    rows = json.loads((tmp_path / "pr/prune.json").read_text())["rows"]
    assert [r["ratio"] for r in rows] == [0.0, 0.5] and "mAP" in rows[0]
    assert rows[1]["gflops_backbone"] < rows[0]["gflops_backbone"]
    assert (tmp_path / "pr/prune.png").stat().st_size > 0

    image = next((trained_detector.root / "val2017").glob("*.jpg"))
    capsys.readouterr()
    assert main(["visualize", config, ckpt, str(image), "--out-dir", str(tmp_path / "vis")]) == 0
    assert {p.name for p in (tmp_path / "vis").iterdir()} == {
        f"{image.stem}_masks.png", f"{image.stem}_stochastic_vs_deterministic.png"}
    # the threshold and the number of boxes drawn are stated
    drawn = re.search(r"; (\d+) of (\d+) detections drawn \(score >= 0.3\)",
                      capsys.readouterr().out)
    assert drawn and int(drawn.group(1)) <= int(drawn.group(2))
    assert main(["visualize", config, ckpt, str(image), "--score-thr", "0", "--out-dir",
                 str(tmp_path / "vis0")]) == 0
    everything = re.search(r"; (\d+) of (\d+) detections drawn \(score >= 0\)",
                           capsys.readouterr().out)
    assert everything and everything.group(1) == everything.group(2) == drawn.group(2)

    flops_json = tmp_path / "fl/flops.json"
    assert main(["flops", config, "--checkpoint", ckpt, *common, "--out-dir",
                 str(flops_json.parent)]) == 0
    assert main(["curve", str(flops_json), "--out-dir", str(tmp_path / "cu")]) == 0
    curve = json.loads((tmp_path / "cu/curve.json").read_text())
    assert curve["metric"] == "mAP" and curve["points"][0]["family"] == "ours"
    capsys.readouterr()


def test_detection_panel_draws_confident_boxes_in_class_colours():
    import numpy as np
    from mmengine.structures import InstanceData

    from seg_sparse.visualization import detection_panel, mask_overlay_figure

    cfg = {"val_dataloader": {"dataset": {"metainfo": {
        "classes": ("person", "car"), "palette": [(255, 0, 0), (0, 255, 0)]}}}}
    image = np.full((40, 60, 3), 100, np.uint8)
    instances = InstanceData(bboxes=torch.tensor([[5.0, 5.0, 30.0, 20.0], [40, 2, 55, 30]]),
                             scores=torch.tensor([0.9, 0.2]), labels=torch.tensor([1, 0]))
    drawn, legend = detection_panel(image, instances, cfg)
    assert tuple(drawn[5, 10]) == (0, 255, 0) and tuple(drawn[12, 15]) == (100, 100, 100)
    assert tuple(drawn[2, 45]) == (100, 100, 100)  # the 0.2 box is below the threshold
    assert legend["class_names"] == ["car"] and legend["palette"].tolist() == [[0, 255, 0]]
    masks = {"layer1.0": (np.ones((40, 60)), np.zeros((40, 60)), 1.0, 0.0)}
    fig = mask_overlay_figure(image, drawn, masks, **legend)
    assert [t.get_text() for t in fig.axes[2].get_legend().get_texts()] == ["car"]


@pytest.mark.parametrize("option", ["--submission-dir", "--cityscapes-eval"])
def test_cityscapes_options_are_refused_for_detection(trained_detector, tmp_path, option,
                                                     capsys):
    extra = [str(tmp_path / "out")] if option == "--submission-dir" else []
    rc = main(["test", str(trained_detector.config), str(trained_detector.checkpoint), option,
               *extra])
    assert rc == 2 and "not to this detection config" in capsys.readouterr().err


def test_data_root_option_also_moves_the_coco_metric(trained_detector, tmp_path):
    from mmengine.config import Config

    from seg_sparse.apis import set_data_root

    cfg = Config.fromfile(str(trained_detector.config))
    set_data_root(cfg, str(tmp_path), ("val_dataloader", "test_dataloader"))
    assert cfg.val_dataloader.dataset.data_root == str(tmp_path)
    assert cfg.val_evaluator.ann_file == str(tmp_path / "annotations/instances_val2017.json")
    assert Path(cfg.test_evaluator.ann_file).parent.parent == tmp_path
