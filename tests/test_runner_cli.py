"""`seg-sparse train` / `seg-sparse test` end to end on tiny synthetic Cityscapes (CPU)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_support import seg_sparse, tiny_config, unique_name
from PIL import Image

from seg_sparse.compat.checkpoint import DIGEST_KEY

# labelIds of the 19 evaluated Cityscapes classes (trainId order)
CITYSCAPES_EVAL_IDS = {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tested(trained, tmp_path_factory):
    """`seg-sparse test --submission-dir DIR --cityscapes-eval --out DIR --show-dir DIR` on the
    trained checkpoint, with the config's log level at WARNING."""
    work_dir = tmp_path_factory.mktemp("test")
    out_dir = work_dir / "submission"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = seg_sparse("test", trained.config, str(trained.checkpoint), "--work-dir",
                        str(work_dir), "--data-root", str(trained.root), "--submission-dir",
                        str(out_dir), "--cityscapes-eval", "--out", str(work_dir / "pred"),
                        "--show-dir", str(work_dir / "painted"), "--cfg-options",
                        "log_level=WARNING", *unique_name("test"))
    assert rc == 0
    report = json.loads((work_dir / "metrics.json").read_text())
    return report, out_dir, stdout.getvalue() + stderr.getvalue()


def test_train_writes_weights_only_loadable_checkpoint(trained):
    assert (trained.work_dir / "last_checkpoint").read_text().strip().endswith("iter_2.pth")
    checkpoint = torch.load(trained.checkpoint, map_location="cpu", weights_only=True)
    assert checkpoint["meta"]["iter"] == 2
    assert any(k.startswith("decode_head.conv_seg") for k in checkpoint["state_dict"])


def test_metrics_json_has_finite_miou_and_per_class_iou(tested):
    report, _, _ = tested
    metrics = report["metrics"]
    assert math.isfinite(metrics["mIoU"]) and 0 <= metrics["mIoU"] <= 100
    assert report["sampler"] == "dense"  # recorded for `seg-sparse curve`
    assert 0 < metrics["aAcc"] <= 100
    assert len(report["per_class"]) == 19 and "road" in report["per_class"]
    ious = [v["IoU"] for v in report["per_class"].values() if v["IoU"] is not None]
    assert metrics["mIoU"] == pytest.approx(np.mean(ious), abs=0.006)  # mmseg rounds to 0.01


def test_per_class_table_is_printed(tested):
    report, _, printed = tested
    assert "official IoU" in printed and "| traffic light |" in printed
    assert f"mIoU: {report['metrics']['mIoU']:.2f}" in printed


def test_out_writes_the_predicted_train_ids_as_mmseg_does(tested, trained):
    report, out_dir, printed = tested
    pred_dir = out_dir.parent / "pred"
    val_images = sorted((trained.root / "leftImg8bit" / "val").glob("*/*_leftImg8bit.png"))
    written = sorted(pred_dir.glob("*.png"))
    assert [p.name for p in written] == [p.name for p in val_images]
    for png, image in zip(written, val_images):
        pred = np.array(Image.open(png))
        assert pred.shape == np.array(Image.open(image)).shape[:2]
        assert set(np.unique(pred).tolist()) <= set(range(19))  # train ids, not label ids
    assert report["predictions"] == str(pred_dir)
    assert "2/2" in printed  # the progress bar, although log_level is WARNING


def test_show_dir_saves_a_painted_prediction_per_image(tested, trained):
    _, out_dir, _ = tested
    painted = sorted((out_dir.parent / "painted").rglob("*.png"))
    names = [p.name for p in painted]
    for image in (trained.root / "leftImg8bit" / "val").glob("*/*_leftImg8bit.png"):
        assert any(image.stem in name for name in names), (image.name, names)


def test_submission_dir_writes_cityscapes_labelids_pngs(tested, trained):
    report, out_dir, _ = tested
    val_images = sorted((trained.root / "leftImg8bit" / "val").glob("*/*_leftImg8bit.png"))
    written = sorted(out_dir.glob("*.png"))
    assert [p.name for p in written] == sorted(p.name for p in val_images)
    for png in written:
        pred = np.array(Image.open(png))
        gt_name = png.name.replace("leftImg8bit", "gtFine_labelIds")
        gt_path = next(trained.root.glob(f"gtFine/val/*/{gt_name}"))
        assert pred.shape == np.array(Image.open(gt_path)).shape
        assert set(np.unique(pred).tolist()) <= CITYSCAPES_EVAL_IDS
    assert report["submission_dir"] == str(out_dir)


def test_tta_tests_every_pass_and_counts_the_gflops_of_all(tested, trained, tmp_path):
    from seg_sparse.cli.test import TTA_SCALE_FACTORS

    report, _, _ = tested
    rc = seg_sparse("test", trained.config, str(trained.checkpoint), "--work-dir",
                    str(tmp_path), "--data-root", str(trained.root), "--tta", "--cfg-options",
                    *unique_name("tta"))
    assert rc == 0
    tta = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert 0 <= tta["mIoU"] <= 100
    passes = 2 * sum(f * f for f in TTA_SCALE_FACTORS)  # in test-size areas, flipped and not
    assert tta["gflops_total_dense"] == pytest.approx(
        passes * report["metrics"]["gflops_total_dense"], rel=0.03)


def test_official_evaluation_agrees_with_iou_metric(tested):
    report, _, _ = tested
    official = report["cityscapes_official"]
    ours = {k: v["IoU"] for k, v in report["per_class"].items()}
    for name, score in official["classScores"].items():
        if ours[name] is None:
            assert score is None, name
        else:
            assert score * 100 == pytest.approx(ours[name], abs=1e-4), name
    miou = np.mean([v for v in ours.values() if v is not None]) / 100
    assert official["averageScoreClasses"] == pytest.approx(miou, rel=1e-3)


def _train_log(work_dir: Path) -> str:
    logs = sorted(work_dir.glob("*/*.log"))
    return logs[-1].read_text()


def test_resume_continues_from_saved_iteration(trained, tmp_path):
    work_dir = tmp_path / "resumed"
    shutil.copytree(trained.work_dir, work_dir)
    rc = seg_sparse("train", trained.config, "--work-dir", str(work_dir), "--resume",
                    "--data-root", str(trained.root), "--cfg-options",
                    "train_cfg.max_iters=3", "param_scheduler.0.end=3", *unique_name("resume"))
    assert rc == 0
    checkpoint = torch.load(work_dir / "iter_3.pth", map_location="cpu", weights_only=True)
    assert checkpoint["meta"]["iter"] == 3
    log = _train_log(work_dir)
    assert "resumed epoch: 0, iter: 2" in log
    assert "Iter(train) [3/3]" in log and "Iter(train) [1/3]" not in log


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU (gloo) launcher path")
def test_torchrun_two_cpu_processes(trained, tmp_path):
    """`--launcher pytorch` on a CPU-only machine: gloo, CPU DDP wrapper, SyncBN across ranks."""
    work_dir = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "seg_sparse.cli.main", "train", tiny_config(tmp_path, iters=1), "--launcher",
         "pytorch", "--work-dir", str(work_dir), "--data-root", str(trained.root)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = _train_log(work_dir)
    assert "Distributed training: True" in log and "'backend': 'gloo'" in log
    assert "Iter(train) [1/1]" in log
    checkpoint = torch.load(work_dir / "iter_1.pth", map_location="cpu", weights_only=True)
    assert checkpoint["meta"]["iter"] == 1


def test_legacy_checkpoint_needs_trust_flag(trained, tmp_path, capsys):
    """A checkpoint pickling more than plain data is refused unless --trust-checkpoint."""
    checkpoint = torch.load(trained.checkpoint, map_location="cpu", weights_only=True)
    checkpoint["meta"]["legacy"] = argparse.Namespace(note="not an allowlisted type")
    del checkpoint["meta"][DIGEST_KEY]  # an edited file no longer matches its digest
    legacy = tmp_path / "legacy.pth"
    torch.save(checkpoint, legacy)
    command = ["test", trained.config, str(legacy), "--work-dir", str(tmp_path / "work"),
               "--data-root", str(trained.root), "--cfg-options"]

    assert seg_sparse(*command, *unique_name("untrusted")) == 2
    err = capsys.readouterr().err
    assert f"Refusing to load checkpoint '{legacy}'" in err and "--trust-checkpoint" in err

    assert seg_sparse("test", "--trust-checkpoint", *command[1:], *unique_name("trusted")) == 0
    assert json.loads((tmp_path / "work" / "metrics.json").read_text())["checkpoint"] == str(legacy)

    from seg_sparse.compat.checkpoint import legacy_checkpoints_allowed

    assert not legacy_checkpoints_allowed()  # the opt-in ended with the command
