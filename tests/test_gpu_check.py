"""``seg-sparse gpu-check`` and ``bench --backends`` on CPU: the script's own logic (the GPU
figures themselves need a GPU): equivalence checks, time budget, backends rows, precisions,
the CUDA-graph wrapper's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seg_sparse.benchmark.backends import (
    BackendRow,
    Deadline,
    crossover_hint,
    format_backends,
    precision,
)
from seg_sparse.cli.main import main

REPO = Path(__file__).resolve().parents[1]
SPARSE_CPU = REPO / "configs/cpu/sparse-fcn_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py"


def test_precision_sets_tf32_and_autocast_and_restores_them():
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with precision("tf32", torch.device("cpu")):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert not torch.is_autocast_enabled("cpu")
    with precision("bf16", torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    with precision("default", torch.device("cpu")):
        assert not torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    with precision("fp32", torch.device("cpu")):
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (
        matmul, cudnn)
    with pytest.raises(ValueError, match="precision must be one of"):
        with precision("fp8", torch.device("cpu")):
            pass


def _row(density, masked, sparse, graph=None, part="backbone"):
    return BackendRow(input="512x1024", part=part, precision="default", density=density,
                      dense_ms=10.0, masked_ms=masked, compiled_ms=None, sparse_ms=sparse,
                      graph_ms=graph, auto_ms=masked, backend="triton", speedup=1.0,
                      flops_ratio=0.5, realization=0.5, device="cuda:0")


def test_backends_table_is_markdown_and_the_hint_names_where_sparse_won():
    rows = [_row(1.0, 30.0, 35.0), _row(0.5, 30.0, 31.0, graph=25.0), _row(0.3, 30.0, 20.0)]
    table = format_backends(rows).splitlines()
    assert table[0].startswith("| input | part |") and "triton sparse ms" in table[0]
    assert set(table[1]) <= set("|-:") and len(table) == 5
    assert "| 512x1024 | backbone | default | 0.30 | 10.0 | 30.0 | - | 20.0 | - |" in table[4]
    hint = crossover_hint(rows)
    assert hint == "backbone: sparse faster than masked at densities [0.3, 0.5], slower at [1.0]"


def test_deadline_allows_only_what_fits():
    assert Deadline(None).allows(1e9)
    budget = Deadline(100.0)
    assert budget.allows(50) and not budget.allows(150)


def test_graphed_forward_refuses_a_cpu_input():
    from seg_sparse.sampling.execution.cuda_graph import GraphedForward

    with pytest.raises(ValueError, match="CUDA graphs need an input on a CUDA device"):
        GraphedForward(lambda x: x * 2, torch.zeros(2))


@pytest.fixture(scope="module")
def bench_models():
    from seg_sparse.benchmark.models import build_bench_models

    return build_bench_models(str(SPARSE_CPU), None, None, "cpu")


@pytest.mark.slow
def test_backend_rows_time_every_path_and_note_a_failed_compile(bench_models, monkeypatch):
    from seg_sparse.benchmark.backends import benchmark_backends

    def failing_compile(fn, backend):
        def run(*args):
            raise RuntimeError("compile failed here\nsecond line")
        return run

    monkeypatch.setattr(torch, "compile", failing_compile)
    notes = []
    rows = benchmark_backends(bench_models.sparse, bench_models.dense, [(32, 64)], [0.3, 1.0],
                              ("backbone",), ("default",), repeats=1, warmup=0,
                              compile_backend="eager", notes=notes)
    assert [(r.part, r.precision, r.density) for r in rows] == [
        ("backbone", "default", 0.3), ("backbone", "default", 1.0)]
    for row in rows:
        assert min(row.dense_ms, row.masked_ms, row.sparse_ms, row.auto_ms) > 0
        assert row.compiled_ms is None and row.graph_ms is None  # compile failed; CPU
        assert row.backend == "torch"
        assert row.realization == pytest.approx(row.speedup * row.flops_ratio)
    assert notes == ["compiled masked (backbone, default) failed: RuntimeError: compile "
                     "failed here"]


@pytest.mark.slow
def test_a_compiled_column_is_timed_when_compile_works(bench_models, monkeypatch):
    from seg_sparse.benchmark.backends import benchmark_backends

    compiled = []
    monkeypatch.setattr(torch, "compile",
                        lambda fn, backend: compiled.append(backend) or fn)
    (row,) = benchmark_backends(bench_models.sparse, bench_models.dense, [(32, 64)], [1.0],
                                ("backbone",), repeats=1, warmup=0, compile_backend="eager")
    assert compiled == ["eager"] and row.compiled_ms > 0


@pytest.mark.slow
def test_out_of_budget_phases_are_skipped_and_said_so(tmp_path, capsys):
    out = tmp_path / "check.json"
    rc = main(["gpu-check", "--device", "cpu", "--dry-run", "--budget", "1", "--out", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    names = [c["name"] for c in result["equivalence"]]
    assert names == ["blocks, float32", "blocks, bfloat16", "backbone (32x64)",
                     "segmentor (32x64)"]
    assert all(c["passed"] and c["max_rel_err"] < c["tolerance"] for c in result["equivalence"])
    assert result["equivalence"][0]["cases"] == 30  # 6 kinds x 5 densities, batch 1
    assert result["backends"] == [] and result["training"] == []
    assert any("time budget" in n for n in result["notes"])
    printed = capsys.readouterr().out
    assert "| blocks, float32 | 30 |" in printed and "note: skipped" in printed


def test_gpu_check_without_cuda_asks_for_the_dry_run(capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is there")
    assert main(["gpu-check"]) == 2
    assert "--device cpu --dry-run" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_backends_prints_the_markdown_table(tmp_path, capsys):
    out = tmp_path / "rows.json"
    rc = main(["bench", str(SPARSE_CPU), "--backends", "--inputs", "32x64", "--densities",
               "0.3", "--parts", "backbone", "--repeats", "1", "--threads", "1",
               "--out", str(out)])
    assert rc == 0
    (row,) = json.loads(out.read_text())
    assert row["backend"] == "torch" and row["sparse_ms"] > 0 and row["precision"] == "default"
    assert "| 32x64 | backbone | default | 0.30 |" in capsys.readouterr().out


def test_the_backbone_around_its_blocks_runs_without_host_syncs(bench_models, monkeypatch):
    """What a CUDA graph of the whole backbone captures besides the blocks' executors (stem,
    mask predictors, samplers, grid prior, bookkeeping) reads nothing back to the host in
    'sparse' mode: the blocks here run a sync-free stand-in for a backend."""
    import dataclasses

    from triton_support import NoHostSync

    from seg_sparse.sampling import execution_mode
    from seg_sparse.sampling.execution import TORCH_BACKEND, policy

    ran = []

    def stand_in(block, x, mask1, mask2, gather_below):  # the output's shape, no sync
        ran.append(mask1 is not None and mask2 is not None)
        return x if block.downsample is None else block.downsample(x)

    backend = dataclasses.replace(TORCH_BACKEND, name="sync-free-stand-in",
                                  run_block=stand_in, priority=100)
    monkeypatch.setitem(policy._BACKENDS, backend.name, backend)
    backbone = bench_models.sparse.backbone
    with torch.no_grad(), execution_mode(backbone, "sparse"):
        backbone(torch.randn(1, 3, 32, 64))  # registry loaders, first-call work
        ran.clear()
        with NoHostSync():
            outputs = backbone(torch.randn(1, 3, 32, 64))
    assert len(ran) == 16 and all(ran) and len(outputs) == 4
