"""The appendix experiments as commands: visualize, sparsity, curve, stability, prune.

One tiny sparse model (stochastic sampler, DCN, base width 8) is trained for 2 iterations on
64x128 synthetic scenes; a dense twin is saved untrained (pruning needs weights, not skill).
Evaluations run on 1 of the generated validation images.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from seg_sparse.cli.main import main

REPO = Path(__file__).resolve().parents[1]
SPARSE_CPU = REPO / "configs/cpu/sparse-fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256_w0.1.py"
DENSE_CPU = REPO / "configs/cpu/fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256.py"
SMALL = """
_base_ = [{base!r}]
model = dict(
    data_preprocessor=dict(size=(64, 128)),
    backbone=dict(base_channels=8, stem_channels=8),
    decode_head=dict(in_channels=256, channels=16),
    auxiliary_head=dict(in_channels=128, channels=8))
train_dataloader = dict(batch_size=1, dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomCrop', crop_size=(64, 128)),
    dict(type='PackSegInputs')]))
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 64), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')]
val_dataloader = dict(dataset=dict(pipeline=_test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=2, val_interval=100)
param_scheduler = [dict(type='PolyLR', power=0.9, begin=0, end=2, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
"""
NO_VAL = ["val_dataloader=None", "val_cfg=None", "val_evaluator=None"]


class Models:
    def __init__(self, root: Path, data: Path) -> None:
        self.root = root
        self.data = data
        self.sparse_config = root / "sparse_small.py"
        self.dense_config = root / "dense_small.py"
        self.sparse_config.write_text(SMALL.format(base=str(SPARSE_CPU)))
        self.dense_config.write_text(SMALL.format(base=str(DENSE_CPU)))
        self.sparse_ckpt = root / "sparse" / "iter_2.pth"
        self.dense_ckpt = root / "dense.pth"

    def args(self, command: str, config: Path, *rest: str) -> list[str]:
        return [command, str(config), *rest, "--data-root", str(self.data)]


@pytest.fixture(scope="session")
def models(synthcity: Path, tmp_path_factory: pytest.TempPathFactory) -> Models:
    """A 2-iteration trained sparse checkpoint and an untrained dense one of the same size."""
    from cli_support import unique_name
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    m = Models(tmp_path_factory.mktemp("analysis"), synthcity)
    rc = main(["train", str(m.sparse_config), "--work-dir", str(m.root / "sparse"),
               "--data-root", str(synthcity), "--cfg-options", *NO_VAL,
               *unique_name("analysis")])
    assert rc == 0 and m.sparse_ckpt.is_file()
    init_default_scope("mmseg")
    torch.manual_seed(0)
    dense = MODELS.build(Config.fromfile(m.dense_config).model)
    dense.init_weights()
    torch.save({"state_dict": dense.state_dict(), "meta": {}}, m.dense_ckpt)
    return m


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.verify()
        return Image.open(path).size


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


# -- sparsity ---------------------------------------------------------------------------------
def test_sparsity_two_checkpoints(models: Models, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sparsity"
    rc = main(models.args("sparsity", models.sparse_config, str(models.sparse_ckpt),
                          str(models.sparse_ckpt), "--labels", "run a", "run b",
                          "--num-images", "1", "--out-dir", str(out)))
    assert rc == 0
    printed = capsys.readouterr().out
    for name in ("sparsity.json", "sparsity.txt", "sparsity.png"):
        assert str(out / name) in printed
    assert "layer4.2" in printed and "conv3 [1]" in printed

    data = read_json(out / "sparsity.json")
    first, second = data["models"]
    assert [first["label"], second["label"]] == ["run a", "run b"]
    assert len(first["blocks"]) == 16  # ResNet-50: 3 + 4 + 6 + 3 blocks
    for block in first["blocks"]:
        assert 0.0 < block["conv1"] <= 1.0 and 0.0 < block["conv2"] <= 1.0
        assert block["conv3"] == block["conv2"]  # conv3 runs where mask2 sampled
    # freshly initialised predictors sample p = sigmoid(3) = 0.95 of the positions
    assert 0.85 < first["mean_density"] < 1.0
    assert 0.0 < first["gflops_backbone"] and 0.0 < first["gflops_backbone_dense"]
    assert 0.0 <= first["mIoU"] <= 100.0 and first["num_images"] == 1
    # same checkpoint, same default seed: identical measurements
    assert first["blocks"] == second["blocks"]
    width, height = png_size(out / "sparsity.png")
    assert width >= 600 and height >= 500  # two panels of 16 blocks

    # where the model computes, measured in the same pass
    assert str(out / "sparsity_regions.png") in printed
    assert "Density on class boundaries vs interiors" in printed and "road" in printed
    regions = first["regions"]
    assert regions == second["regions"] and regions["images"] == 1 and regions["band"] == 1
    assert [b["name"] for b in regions["blocks"]] == [b["name"] for b in first["blocks"]]
    assert 0.0 < regions["boundary"] <= 1.0 and 0.0 < regions["interior"] <= 1.0
    assert regions["boundary_interior_ratio"] == pytest.approx(
        regions["boundary"] / regions["interior"])
    shares = [c["share"] for c in regions["per_class"].values()]
    assert sum(shares) == pytest.approx(1.0) and "road" in regions["per_class"]
    width, height = png_size(out / "sparsity_regions.png")
    assert width >= 1000 and height >= 600  # two rows of two panels


def test_checkpoint_of_another_architecture_is_refused(models: Models, tmp_path: Path,
                                                        capsys) -> None:
    rc = main(models.args("sparsity", models.sparse_config, str(models.dense_ckpt),
                          "--out-dir", str(tmp_path)))
    assert rc == 2
    err = capsys.readouterr().err
    assert "does not match the model" in err and "mask1" in err
    assert not (tmp_path / "sparsity.json").exists()


# -- stability --------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["stochastic", "deterministic"])
def test_stability_std(models: Models, tmp_path: Path, sampler: str) -> None:
    rc = main(models.args("stability", models.sparse_config, str(models.sparse_ckpt),
                          "--runs", "2", "--num-images", "1", "--out-dir", str(tmp_path),
                          "--cfg-options", f"model.backbone.sampler={sampler}"))
    assert rc == 0
    data = read_json(tmp_path / "stability.json")
    assert data["sampler"] == sampler and data["grid_prior"] is True
    assert [run["seed"] for run in data["runs"]] == [0, 1]
    assert "run 2 (seed 1)" in (tmp_path / "stability.txt").read_text()
    for key in ("mIoU", "gflops_backbone", "gflops_total", "mean_density"):
        assert set(data[key]) == {"mean", "std"}
    if sampler == "deterministic":
        assert all(data[k]["std"] == 0.0 for k in ("mIoU", "gflops_backbone", "mean_density"))
        assert data["mean_density"]["mean"] == 1.0  # every p = 0.95 >= 0.5
    else:
        assert data["gflops_backbone"]["std"] > 0.0 and data["mean_density"]["std"] > 0.0
        assert data["runs"][0]["mean_density"] != data["runs"][1]["mean_density"]


def test_stability_without_grid_prior_samples_less(models: Models) -> None:
    from seg_sparse.analysis import load_model, run_stability

    loaded = load_model(str(models.sparse_config), str(models.sparse_ckpt),
                        data_root=str(models.data))
    with_prior = run_stability(loaded, runs=1, num_images=1)
    without = run_stability(loaded, runs=1, num_images=1, grid_prior=False)
    assert without.grid_prior is False
    # same seed, same noise: the prior only adds forced-sampled positions
    assert without.runs[0].mean_density < with_prior.runs[0].mean_density
    blocks = [b for _, b in loaded.model.backbone.named_modules() if hasattr(b, "grid_interval")]
    assert all(b.grid_interval == 11 for b in blocks)  # restored afterwards


# -- prune ------------------------------------------------------------------------------------
def test_prune_zeroes_the_ratio_and_spares_offsets_and_predictors(models: Models) -> None:
    from seg_sparse.analysis import load_model, prunable_convs, prune_backbone

    model = load_model(str(models.sparse_config), str(models.sparse_ckpt)).model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    convs = prunable_convs(model)
    names = [n for n, _ in convs]
    assert "stem.0" in names and "layer3.0.conv2" in names and "layer3.0.downsample.0" in names
    assert not any("offset" in n or "mask" in n for n in names)

    stats = prune_backbone(model, 0.6)
    weights = torch.cat([m.weight.detach().flatten() for _, m in convs])
    assert stats.conv_weights == weights.numel()
    zero_fraction = float((weights == 0).float().mean())
    assert zero_fraction == pytest.approx(0.6, abs=2 / weights.numel())
    assert stats.conv_sparsity == pytest.approx(zero_fraction)
    pruned = {f"backbone.{n}.weight" for n in names}
    after = model.state_dict()
    assert set(after) == set(before)  # pruning re-parametrisation removed again
    untouched = [k for k in before if k not in pruned]
    assert any("conv2_offset" in k for k in untouched) and any("mask2" in k for k in untouched)
    for key in untouched:
        assert torch.equal(after[key], before[key]), key
    # the smallest |w| went: every kept weight is at least as large as every zeroed one
    original = torch.cat([before[f"backbone.{n}.weight"].flatten() for n in names]).abs()
    assert original[weights != 0].min() >= original[weights == 0].max()


def test_prune_command_on_dense_model(models: Models, tmp_path: Path, capsys) -> None:
    rc = main(models.args("prune", models.dense_config, str(models.dense_ckpt),
                          "--ratios", "0.5", "--num-images", "1", "--out-dir", str(tmp_path)))
    assert rc == 0
    assert str(tmp_path / "prune.png") in capsys.readouterr().out
    data = read_json(tmp_path / "prune.json")
    base, half = data["rows"]
    assert (base["ratio"], half["ratio"]) == (0.0, 0.5)
    assert half["conv_sparsity"] == pytest.approx(0.5, abs=1e-4)
    removed = half["conv_weights"] - half["conv_weights_nonzero"]
    assert base["model_params_nonzero"] - half["model_params_nonzero"] == pytest.approx(
        removed - (base["conv_weights"] - base["conv_weights_nonzero"]))
    # unpruned: every conv weight is non-zero, so the count equals the plain one
    assert base["gflops_backbone"] == pytest.approx(base["gflops_backbone_unpruned"])
    assert 0.0 < half["gflops_backbone"] < base["gflops_backbone"]
    assert half["gflops_total"] - half["gflops_backbone"] == pytest.approx(
        base["gflops_total"] - base["gflops_backbone"])  # the head is not pruned
    assert half["num_images"] == 1
    assert png_size(tmp_path / "prune.png")[0] >= 800
    assert "0.50" in (tmp_path / "prune.txt").read_text()


def test_nonzero_weight_flops_scales_each_conv(models: Models) -> None:
    """Against an independent count: hooks give each conv's output positions."""
    from seg_sparse.analysis import load_model, nonzero_weight_flops, prunable_convs
    from seg_sparse.analysis.prune import prune_backbone
    from seg_sparse.flops import count_flops

    model = load_model(str(models.dense_config), str(models.dense_ckpt)).model
    prune_backbone(model, 0.7)
    positions: dict[str, int] = {}
    hooks = [m.register_forward_hook(
        lambda mod, i, o, n=n: positions.__setitem__(n, o.numel() // o.shape[1]))
        for n, m in prunable_convs(model)]
    report = count_flops(model, (64, 128))
    for h in hooks:
        h.remove()
    removed = sum((m.weight == 0).sum().item() * positions[n] for n, m in prunable_convs(model))
    scaled = nonzero_weight_flops(report, model)
    assert scaled.backbone_dense_macs == pytest.approx(report.backbone_dense_macs - removed,
                                                       rel=1e-6)
    assert scaled.head == report.head


# -- visualize --------------------------------------------------------------------------------
def test_visualize_writes_mask_and_comparison_figures(models: Models, tmp_path: Path,
                                                      capsys) -> None:
    image = next((models.data / "leftImg8bit" / "val").rglob("*.png"))
    rc = main(models.args("visualize", models.sparse_config, str(models.sparse_ckpt),
                          str(image), "--blocks", "layer1.0", "layer3.5", "--out-dir",
                          str(tmp_path)))
    assert rc == 0
    printed = capsys.readouterr().out
    masks = tmp_path / f"{image.stem}_masks.png"
    comparison = tmp_path / f"{image.stem}_stochastic_vs_deterministic.png"
    assert str(masks) in printed and str(comparison) in printed
    assert "layer1.0" in printed and "layer3.5" in printed
    w, h = png_size(masks)
    assert w > 600 and h > 3 * 150  # image/prediction row + 2 block rows
    assert png_size(comparison)[0] > 600


def test_visualize_bad_inputs(models: Models, tmp_path: Path, capsys) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    args = [str(models.sparse_config), str(models.sparse_ckpt)]
    assert main(["visualize", *args, str(broken), "--out-dir", str(tmp_path)]) == 2
    assert "broken.png" in capsys.readouterr().err

    image = next((models.data / "leftImg8bit" / "val").rglob("*.png"))
    assert main(["visualize", *args, str(image), "--blocks", "layer9.9"]) == 2
    err = capsys.readouterr().err
    assert "layer9.9" in err and "layer1.0" in err  # names the valid blocks

    assert main(["visualize", *args, str(tmp_path / "missing_dir")]) == 2
    assert "missing_dir" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_visualize_checks_every_image_before_writing(models: Models, tmp_path: Path, capsys,
                                                     damage: str) -> None:
    """A bad second image stops the command before the first image's figures are written."""
    folder = tmp_path / "images"
    folder.mkdir()
    good = next((models.data / "leftImg8bit" / "val").rglob("*.png"))
    (folder / "a.png").write_bytes(good.read_bytes())
    bad = folder / "b.png"
    bad.write_bytes(b"" if damage == "empty" else good.read_bytes()[: len(good.read_bytes()) // 3])
    out = tmp_path / "out"
    rc = main(["visualize", str(models.sparse_config), str(models.sparse_ckpt), str(folder),
               "--out-dir", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot decode image '{bad}'" in err[0]
    assert not out.exists() or not list(out.iterdir())


# -- curve ------------------------------------------------------------------------------------
def _result(path: Path, config: str, miou: float, gflops: float | None,
            sampler: str | None = None) -> str:
    """A ``seg-sparse test`` metrics.json; ``gflops`` None: dense GFLOPs only (no densities)."""
    metrics = {"mIoU": miou, "aAcc": 90.0, "gflops_backbone_dense": 100.0,
               "gflops_total_dense": 120.0}
    if gflops is not None:
        metrics.update(gflops_backbone_sparse=gflops, gflops_total_sparse=gflops + 20)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"config": config, "checkpoint": "x.pth", "metrics": metrics}
    if sampler is not None:
        data["sampler"] = sampler
    path.write_text(json.dumps(data))
    return str(path)


def test_curve_groups_families_from_recorded_samplers(tmp_path: Path, capsys) -> None:
    sparse = "configs/sparse_fcn/sparse-fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w{}.py"
    determ = "configs/sparse_fcn/determ-fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w{}.py"
    uniform = "configs/fcn_dcn/fcn_r50-d8-dcn_4xb2-60k_cityscapes-uniform{}.py"
    files = [
        _result(tmp_path / "a/metrics.json", str(REPO / sparse.format(0.1)), 75.0, 60.0,
                "stochastic"),
        # the recorded sampler wins over the file name (tested with p >= 0.5 masks)
        _result(tmp_path / "b/metrics.json", str(REPO / sparse.format(0.2)), 74.0, 45.0,
                "deterministic"),
        _result(tmp_path / "c/metrics.json", str(REPO / determ.format(0.1)), 73.0, 58.0),
        _result(tmp_path / "d/metrics.json", str(REPO / uniform.format(512)), 68.0, None,
                "dense"),
        _result(tmp_path / "e/metrics.json", "elsewhere/relu-fcn_x_w0.05.py", 72.0, 50.0),
    ]
    out = tmp_path / "out"
    assert main(["curve", *files, "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out / "curve.png") in printed and "short side 512" in printed
    points = read_json(out / "curve.json")["points"]
    assert [p["family"] for p in points] == ["ours", "Determ Gumbel-Softmax",
                                             "Determ Gumbel-Softmax", "uniform sampling",
                                             "ReLU"]
    assert [p["label"] for p in points] == ["w0.1", "w0.2", "w0.1", "short side 512", "w0.05"]
    uniform_point = next(p for p in points if p["family"] == "uniform sampling")
    assert uniform_point["gflops"] == 100.0  # dense count when there are no densities
    assert next(p for p in points if p["label"] == "w0.2")["mIoU"] == 74.0
    w, h = png_size(out / "curve.png")
    assert w >= 600 and h >= 400


def test_curve_bad_inputs(tmp_path: Path, capsys) -> None:
    from seg_sparse.analysis import ResultFileError, load_curve_points

    with pytest.raises(ResultFileError, match="no result files"):
        load_curve_points([])
    with pytest.raises(SystemExit):  # argparse: RESULT.json is required
        main(["curve"])
    no_flops = _result(tmp_path / "n/metrics.json", "sparse-x.py", 70.0, None)
    data = read_json(Path(no_flops))
    data["metrics"] = {k: v for k, v in data["metrics"].items() if not k.startswith("gflops")}
    Path(no_flops).write_text(json.dumps(data))
    assert main(["curve", no_flops, "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "metrics.json" in err and "GFLOPs" in err
    no_acc = tmp_path / "acc.json"
    no_acc.write_text(json.dumps({"gflops_backbone_sparse": 3.0}))
    assert main(["curve", str(no_acc), "--family", "ours"]) == 2
    assert "acc.json" in capsys.readouterr().err and not (tmp_path / "curve.png").exists()


def test_curve_never_runs_the_config_a_result_names(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "CONFIG_RAN"
    config = tmp_path / "innocent.py"
    config.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
                      "model = dict(backbone=dict(sampler='stochastic'))\n")
    result = _result(tmp_path / "r/metrics.json", str(config), 70.0, 50.0)
    assert main(["curve", result, "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot tell the method family" in err and "--family" in err
    assert not marker.exists()
    assert main(["curve", result, "--family", "ours", "--out-dir", str(tmp_path / "out")]) == 0
    assert not marker.exists()


@pytest.mark.parametrize("value", ["abc", "NaN", None])
def test_curve_refuses_non_numeric_metrics_in_one_line(tmp_path: Path, capsys, value) -> None:
    result = Path(_result(tmp_path / "r/metrics.json", "sparse-x.py", 70.0, 50.0))
    data = read_json(result)
    data["metrics"]["mIoU"] = value if value != "NaN" else float("nan")
    result.write_text(json.dumps(data))
    assert main(["curve", str(result), "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(result) in err[0]
    assert ("not a" in err[0]) if value is not None else ("no accuracy key" in err[0])
