"""Each bad input stops `seg-sparse` with an error that names the file, key or value."""

from __future__ import annotations

import numpy as np
import pytest
from cli_support import CPU_CONFIG, copy_dataset, seg_sparse, unique_name
from PIL import Image

pytestmark = pytest.mark.slow


def _test_on(root, trained, tmp_path, *extra_options: str) -> int:
    return seg_sparse("test", trained.config, str(trained.checkpoint), "--work-dir",
                      str(tmp_path / "work"), "--data-root", str(root), "--cfg-options",
                      *extra_options, *unique_name("bad"))


def test_missing_data_root(tiny, tmp_path, capsys):
    missing = tmp_path / "no_such_root"
    rc = seg_sparse("train", tiny, "--work-dir", str(tmp_path / "work"), "--cfg-options",
                    f"train_dataloader.dataset.data_root={missing}",
                    *unique_name("missing_root"))
    assert rc == 2
    err = capsys.readouterr().err
    assert f"data_root '{missing}' does not exist" in err


def test_missing_split(synthcity, trained, tmp_path, capsys):
    root = copy_dataset(synthcity, tmp_path / "no_val")
    for path in sorted((root / "leftImg8bit" / "val").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (root / "leftImg8bit" / "val").rmdir()
    assert _test_on(root, trained, tmp_path) == 2
    assert f"{root}/leftImg8bit/val' does not exist" in capsys.readouterr().err


def test_undecodable_image(synthcity, trained, tmp_path, capsys):
    root = copy_dataset(synthcity, tmp_path / "broken_image")
    broken = sorted((root / "leftImg8bit" / "val").glob("*/*.png"))[0]
    broken.write_bytes(b"not a png at all")
    assert _test_on(root, trained, tmp_path) == 2
    err = capsys.readouterr().err
    assert "cannot decode image" in err and str(broken) in err


def test_empty_image_is_one_line_naming_it(synthcity, trained, tmp_path, capsys):
    root = copy_dataset(synthcity, tmp_path / "empty_image")
    empty = sorted((root / "leftImg8bit" / "val").glob("*/*.png"))[0]
    empty.write_bytes(b"")
    assert _test_on(root, trained, tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"seg-sparse test: error: cannot decode image '{empty}': the file is empty "
                   "(0 bytes)"]


def test_image_and_label_of_different_sizes(synthcity, trained, tmp_path, capsys):
    root = copy_dataset(synthcity, tmp_path / "size_mismatch")
    label = sorted((root / "gtFine" / "val").glob("*/*_labelTrainIds.png"))[0]
    Image.fromarray(np.array(Image.open(label))[:-8]).save(label)
    assert _test_on(root, trained, tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"'{label}' is" in err[0] and "leftImg8bit.png' is" in err[0]


def test_label_values_outside_train_ids(synthcity, trained, tmp_path, capsys):
    root = copy_dataset(synthcity, tmp_path / "bad_labels")
    label = sorted((root / "gtFine" / "val").glob("*/*_labelTrainIds.png"))[0]
    values = np.array(Image.open(label))
    values[:4, :4] = 33  # a labelId, not a trainId
    Image.fromarray(values).save(label)
    assert _test_on(root, trained, tmp_path) == 2
    err = capsys.readouterr().err
    assert f"label map '{label}' has values [33]" in err


def test_config_key_typo(tmp_path, capsys):
    rc = seg_sparse("train", CPU_CONFIG, "--work-dir", str(tmp_path),
                    "--cfg-options", "model.decode_head.num_class=19")
    assert rc == 2
    err = capsys.readouterr().err
    assert "'model.decode_head' has no key 'num_class'" in err
    assert "Did you mean: model.decode_head.num_classes" in err
    assert not (tmp_path / "last_checkpoint").exists()


def test_checkpoint_of_another_architecture(trained, tmp_path, capsys):
    rc = _test_on(trained.root, trained, tmp_path, "model.decode_head.channels=32",
                  "model.backbone.stage_with_dcn=(False,True,True,False)")
    assert rc == 2
    err = capsys.readouterr().err
    assert f"checkpoint '{trained.checkpoint}' does not match the model" in err
    # stage 4 lost its DCN (offset convs unexpected), the head is narrower (shapes differ)
    assert "unexpected in checkpoint: backbone.layer4.0." in err and "offset" in err
    assert "shape mismatch: decode_head." in err
    assert "decode_head.conv_cat.conv.weight: checkpoint (64, 576, 3, 3) vs model (32, 544, 3, 3)" \
        in err


def test_colour_label_map_stops_before_inference(synthcity, trained, tmp_path, capsys):
    root = copy_dataset(synthcity, tmp_path / "rgb_label")
    label = sorted((root / "gtFine" / "val").glob("*/*_labelTrainIds.png"))[0]
    Image.fromarray(np.array(Image.open(label))).convert("RGB").save(label)
    assert _test_on(root, trained, tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"seg-sparse test: error: label map '{label}' has 3 channels (RGB); a label "
                   "map must be a single-channel image of class ids (Cityscapes: "
                   "*_gtFine_labelTrainIds.png), not a colour image such as *_gtFine_color.png"]
    assert not (tmp_path / "work" / "metrics.json").exists()


def test_out_below_a_file_is_refused_before_testing(trained, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    rc = seg_sparse("test", trained.config, str(trained.checkpoint), "--work-dir",
                    str(tmp_path / "work"), "--data-root", str(trained.root),
                    "--out", str(blocker / "submission"))
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"seg-sparse test: error: directory '{blocker / 'submission'}' cannot be "
                   f"created: '{blocker}' is a file"]
    assert not (tmp_path / "work").exists()  # refused before the Runner made its work dir


def test_directory_given_as_checkpoint(trained, tmp_path, capsys):
    rc = seg_sparse("test", trained.config, str(tmp_path), "--work-dir", str(tmp_path / "w"))
    assert rc == 2
    assert capsys.readouterr().err.strip() == (
        f"seg-sparse test: error: checkpoint '{tmp_path}' is a directory, not a file")


def test_non_finite_weights_are_refused_before_testing(trained, tmp_path, capsys):
    """A digest-valid checkpoint with NaN / Inf weights (a diverged run) used to be evaluated
    to mIoU 2.24 with exit code 0."""
    import torch

    from seg_sparse.compat.checkpoint import record_checkpoint_digest

    checkpoint = torch.load(trained.checkpoint, weights_only=True)
    state = checkpoint["state_dict"]
    state["backbone.layer1.0.conv1.weight"][0, 0] = float("nan")
    state["decode_head.conv_seg.bias"][2] = float("inf")
    record_checkpoint_digest(checkpoint)
    path = tmp_path / "diverged.pth"
    torch.save(checkpoint, path)
    rc = seg_sparse("test", trained.config, str(path), "--work-dir", str(tmp_path / "work"),
                    "--data-root", str(trained.root), "--cfg-options", *unique_name("nan"))
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"seg-sparse test: error: checkpoint '{path}' holds non-finite weights in 2 "
                   "tensor(s): backbone.layer1.0.conv1.weight (1 NaN, 0 Inf), "
                   "decode_head.conv_seg.bias (0 NaN, 1 Inf); the training that wrote it "
                   "diverged or the file was altered, and any metric computed with it would be "
                   "meaningless"]
    assert not (tmp_path / "work" / "metrics.json").exists()
