"""``seg-sparse bench`` and its pieces: exact-density masks, timing, peak memory, JSON rows."""

import json
from pathlib import Path

import pytest
import torch

from seg_sparse.benchmark import alternated_medians, exact_density_mask, peak_memory_bytes
from seg_sparse.cli.main import main
from seg_sparse.sampling import grid_prior_mask

REPO = Path(__file__).resolve().parents[1]
SPARSE_CPU = REPO / "configs/cpu/sparse-fcn_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py"
DENSE_CPU = REPO / "configs/cpu/fcn_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py"
ROW_KEYS = {"input", "part", "density", "dense_ms", "sparse_ms", "speedup", "flops_ratio",
            "realization", "device", "threads"}


@pytest.mark.parametrize("density", [0.0, 0.15, 0.3, 0.5, 1.0])
def test_exact_density_masks_have_the_count_and_include_the_grid(density):
    mask = exact_density_mask((2, 1, 23, 31), density, 11, torch.Generator().manual_seed(0))
    grid = grid_prior_mask(23, 31, 11)
    per_image = mask.flatten(1).sum(1)
    expected = max(round(density * 23 * 31), int(grid.sum()))
    assert per_image.tolist() == [expected, expected]
    assert bool(mask[:, 0][:, grid].all())
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_exact_density_rejects_densities_outside_0_1():
    with pytest.raises(ValueError, match="density must be in"):
        exact_density_mask((1, 1, 4, 4), 1.5, None)


def test_alternated_medians_run_every_candidate_warmup_excluded():
    calls = {"a": 0, "b": 0}

    def count(name):
        def fn():
            calls[name] += 1
        return fn

    ms = alternated_medians({"a": count("a"), "b": count("b")}, repeats=3, warmup=2)
    assert calls == {"a": 5, "b": 5} and set(ms) == {"a", "b"}
    assert all(v >= 0 for v in ms.values())


def test_peak_memory_sees_a_temporary_allocation():
    def allocate():
        t = torch.ones(32, 1024, 1024)  # 128 MiB
        return float(t[0, 0, 0])

    peak = peak_memory_bytes(allocate)
    assert peak is not None and 100 * 2**20 < peak < 400 * 2**20


def test_bench_writes_rows_for_every_part_and_density(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", str(SPARSE_CPU), "--inputs", "64x128", "--densities", "1.0", "0.3",
               "--repeats", "1", "--threads", "1", "--train", "--crossover",
               "--train-crop", "32x64", "--train-batch", "2", "--out-json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())
    inference = [r for r in rows if r["part"] != "training"]
    assert {(r["part"], r["density"]) for r in inference} == {
        (p, d) for p in ("backbone", "segmentor") for d in (1.0, 0.3)}
    for row in rows:
        assert ROW_KEYS <= set(row)
        assert row["threads"] == 1 and row["device"] == "cpu"
        assert row["dense_ms"] > 0 and row["sparse_ms"] > 0
    for row in inference:
        assert row["realization"] == pytest.approx(row["speedup"] * row["flops_ratio"])
        assert row["gather_ms"] > 0 and row["fullmap_ms"] > 0  # --crossover
    by_density = {(r["part"], r["density"]): r for r in inference}
    # executed GFLOPs: the mask predictors at density 1, well under dense at 0.3
    assert 1.0 < by_density["backbone", 1.0]["flops_ratio"] < 1.05
    assert by_density["backbone", 0.3]["flops_ratio"] < 0.6
    assert by_density["segmentor", 0.3]["flops_ratio"] > by_density["backbone", 0.3]["flops_ratio"]
    (training,) = [r for r in rows if r["part"] == "training"]
    assert training["input"] == "32x64" and training["batch"] == 2
    printed = capsys.readouterr().out
    assert "threads: 1" in printed and "realization" in printed


def test_bench_refuses_a_dense_config(capsys):
    assert main(["bench", str(DENSE_CPU), "--quick"]) == 2
    assert "not a sampling model" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--inputs", "512by1024"], "expected HxW"),
    (["--densities", "1.2"], "density must be in"),
    (["--repeats", "0"], "positive integer"),
])
def test_bench_rejects_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", str(SPARSE_CPU), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_dcn_layer_benchmark_times_every_implementation_per_mode(tmp_path):
    """``python -m seg_sparse.benchmark.dcn_layer``: one row per shape and mode, medians > 0."""
    import json

    from seg_sparse.benchmark.dcn_layer import main

    out = tmp_path / "rows.json"
    assert main(["--shapes", "8x6x7x2", "--repeats", "1", "--threads", "1",
                 "--densities", "0.5", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["mode"] for r in rows] == ["forward", "forward+backward", "at 50%"]
    assert all(r[key] > 0 for r in rows for key in ("conv_ms", "torchvision_ms", "ours_ms"))
    assert all((r["channels"], r["height"], r["width"], r["dilation"]) == (8, 6, 7, 2)
               for r in rows)
