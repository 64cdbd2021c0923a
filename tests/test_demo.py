"""`seg-sparse demo` end to end in a reduced mode, and its option / output-dir errors."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from PIL import Image

from seg_sparse.cli.main import main
from seg_sparse.demo import DemoError, DemoSettings
from seg_sparse.demo.pipeline import prepare_data
from seg_sparse.demo.settings import (
    DENSE_CONFIG,
    SPARSE_CONFIG,
    SPARSE_HEAD_CONFIG,
    configs_dir,
)

SMALL = ["--iters", "2", "--sparse-iters", "2", "--num-train", "4", "--num-val", "2",
         "--size", "64", "128"]


def _finite_numbers(value) -> bool:
    if isinstance(value, dict):
        return all(_finite_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_numbers(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return True


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> list[tuple[dict, str]]:
    """The reduced demo run twice in this process, into separate folders: (report, printed)."""
    import contextlib
    import io

    runs = []
    for name in ("first", "second"):
        out = tmp_path_factory.mktemp(f"demo_{name}")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(["demo", "--out-dir", str(out), *SMALL]) == 0
        runs.append((json.loads((out / "report.json").read_text()), printed.getvalue()))
    return runs


@pytest.mark.slow
def test_two_runs_on_one_machine_give_identical_figures(two_runs):
    (first, _), (second, _) = two_runs
    for model in ("dense", "sparse", "sparse_head"):
        for key in ("mIoU", "gflops", "mean_density", "block_densities", "head_densities",
                    "where_computed"):
            assert first[model][key] == second[model][key], (model, key)


@pytest.mark.slow
def test_demo_writes_report_figures_and_checkpoints(two_runs):
    report, printed = two_runs[0]
    assert "==> [8/8]" in printed and "report.json" in printed

    assert _finite_numbers(report)
    for key in ("dense", "sparse", "sparse_head"):
        entry = report[key]
        assert 0.0 <= entry["mIoU"] <= 100.0
        assert set(entry["gflops"]) == {"backbone", "head", "total"}
        assert entry["gflops"]["total"] == pytest.approx(
            entry["gflops"]["backbone"] + entry["gflops"]["head"])
        assert entry["train_time_s"] > 0 and entry["eval_time_s"] > 0
        assert Path(entry["checkpoint"]).is_file()
        assert len(entry["block_densities"]) == 16  # ResNet-50: 3 + 4 + 6 + 3 blocks
    # same network and input: the dense twin's full cost equals the sparse model's dense cost
    assert report["dense"]["gflops_dense"] == report["sparse"]["gflops_dense"]
    assert report["dense"]["mean_density"] == 1.0
    assert 0.0 < report["sparse"]["mean_density"] <= 1.0
    assert report["sparse"]["initialised_from"] == report["dense"]["checkpoint"]
    # the third model samples its head too: the head runs below its dense cost
    head = report["sparse_head"]
    assert head["initialised_from"] == report["dense"]["checkpoint"]
    assert list(head["head_densities"]) == ["convs.0", "convs.1", "conv_cat"]
    assert 0.0 < head["head_mean_density"] < 1.0
    assert head["gflops"]["head"] < head["gflops_dense"]["head"]
    assert report["sparse"]["gflops"]["head"] == report["sparse"]["gflops_dense"]["head"]
    assert report["sparse"]["head_densities"] == {}
    assert report["sparse_head_vs_sparse"]["total_gflops_ratio"] == pytest.approx(
        head["gflops"]["total"] / report["sparse"]["gflops"]["total"])
    # where the sampling models compute: class boundaries vs interiors, per class
    assert report["dense"]["where_computed"] is None and "boundary / interior" in printed
    for key in ("sparse", "sparse_head"):
        where = report[key]["where_computed"]
        assert where["band"] == 1 and 0.0 < where["interior"] <= 1.0
        assert where["boundary_interior_ratio"] == pytest.approx(
            where["boundary"] / where["interior"])
        assert sum(c["share"] for c in where["per_class"].values()) == pytest.approx(1.0)
        assert f"{where['boundary_interior_ratio']:.2f}" in printed
    assert set(report["figures"]) == {"mask_overlay", "head_mask_overlay",
                                      "stochastic_vs_deterministic", "sparsity"}
    for path in report["figures"].values():
        with Image.open(path) as img:
            assert img.size[0] > 500 and img.size[1] > 300


def test_demo_data_is_generated_once_and_reused(tmp_path):
    settings = DemoSettings(out_dir=tmp_path, num_train=2, num_val=1, size=(64, 128))
    messages: list[str] = []
    root = prepare_data(settings, messages.append)
    images = sorted(root.rglob("*_leftImg8bit.png"))
    assert len(images) == 3 and "wrote 2 train + 1 val" in messages[-1]
    stamps = [os.path.getmtime(p) for p in images]
    assert prepare_data(settings, messages.append) == root
    assert messages[-1].startswith("reusing 2 + 1 scenes")
    assert [os.path.getmtime(p) for p in images] == stamps
    # other data options get their own folder instead of mixing with these scenes
    assert DemoSettings(out_dir=tmp_path, num_train=3, num_val=1).data_root != root


def test_demo_refuses_an_unwritable_out_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["demo", "--out-dir", str(blocker / "demo"), *SMALL]) == 2
    err = capsys.readouterr().err
    assert f"seg-sparse demo: error: directory '{blocker / 'demo'}' is not writable" in err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(iters=0), "--iters must be >= 1"),
        (dict(num_val=0), "--num-train and --num-val must be >= 1"),
        (dict(size=(100, 256)), "--size must be two multiples of 32"),
        (dict(device="tpu"), "--device must be one of"),
    ],
)
def test_demo_settings_reject_bad_options(tmp_path, kwargs, message):
    with pytest.raises(DemoError, match=message):
        DemoSettings(out_dir=tmp_path, **kwargs)


def test_demo_configs_are_found_and_configs_env_is_checked(tmp_path, monkeypatch):
    folder = configs_dir()
    assert all((folder / c).is_file() for c in (DENSE_CONFIG, SPARSE_CONFIG, SPARSE_HEAD_CONFIG))
    monkeypatch.setenv("SEG_SPARSE_CONFIGS", str(tmp_path))
    with pytest.raises(DemoError, match="demo configs not found under"):
        configs_dir()
