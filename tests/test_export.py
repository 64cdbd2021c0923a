"""Export for deployment: torch.export programs of the dense twin and of the sampled model's
masked path (saved, loaded, run, equal to eager), ONNX of the dense twin through ONNX's
DeformConv (run by onnxruntime), torch.jit.trace of the masked path, `seg-sparse export`."""

from __future__ import annotations

import seg_sparse  # noqa: F401, I001  # isort: skip  (mmcv.ops fallback before mmseg)
import pytest
import torch
from cli_support import SPARSE_CPU_CONFIG
from cli_support import seg_sparse as run_cli
from test_compile import segmentor

from seg_sparse.apis.export import (
    SegmentorLogits,
    eager_logits,
    export_onnx,
    export_program,
    load_program,
    run_onnx,
    save_program,
)
from seg_sparse.sampling import execution_mode

X = torch.randn(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))


def targets(program: torch.export.ExportedProgram) -> set[str]:
    return {str(node.target) for node in program.graph.nodes if node.op == "call_function"}


@pytest.mark.parametrize("sampler", ["dense", "stochastic"])
def test_exported_program_saved_loaded_and_run_equals_eager(tmp_path, sampler):
    model = segmentor(sampler).eval()
    program = export_program(model, X)
    ops = targets(program)
    assert "seg_sparse.deform_conv2d.default" in ops  # one opaque node per DCN
    assert ("aten.rand_like.default" in ops) == (sampler != "dense")  # the masks' draws
    path = save_program(program, str(tmp_path / "model.pt2"))
    loaded = load_program(path).module()
    torch.manual_seed(0)
    reference = eager_logits(model, X)
    torch.manual_seed(0)  # the program draws from torch's global RNG, as eager does
    with torch.no_grad():
        out = loaded(X)
    assert out.shape == (2, 19, 32, 48)
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-6)
    if sampler == "dense":  # and the dense twin equals its fastest eager path
        with torch.no_grad(), execution_mode(model, "auto"):
            torch.testing.assert_close(out, SegmentorLogits(model)(X), rtol=1e-4, atol=1e-5)


def test_a_dynamic_program_runs_other_batch_and_image_sizes(tmp_path):
    model = segmentor("dense").eval()
    loaded = load_program(save_program(export_program(model, X, dynamic=True),
                                       str(tmp_path / "dynamic.pt2"))).module()
    other = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(loaded(other), eager_logits(model, other), rtol=1e-5,
                                   atol=1e-6)


def test_onnx_of_the_dense_twin_runs_in_onnxruntime_like_eager(tmp_path):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    model = segmentor("dense").eval()
    path = export_onnx(model, X, str(tmp_path / "dense.onnx"))
    graph = onnx.load(path).graph
    assert any(node.op_type == "DeformConv" for node in graph.node)
    torch.testing.assert_close(run_onnx(path, X), eager_logits(model, X), rtol=1e-4,
                               atol=1e-5)


def test_jit_trace_of_the_masked_path_records_torchvisions_deform_conv():
    """mmengine's FLOP counter traces with torch.jit: the sampled model traces its masked
    path (no executor, no data_ptr()), the DCN as one torchvision::deform_conv2d node."""
    model = segmentor().eval()  # execution 'auto': tracing switches to the masked path
    with torch.no_grad():
        traced = torch.jit.trace(SegmentorLogits(model), (X,), check_trace=False)
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    assert "torchvision::deform_conv2d" in kinds
    torch.manual_seed(0)
    with torch.no_grad():
        out = traced(X)
    torch.manual_seed(0)
    torch.testing.assert_close(out, eager_logits(model, X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("out, message", [
    ("model.onnx.txt", "must end in .pt2 or .onnx"),
])
def test_export_cli_refuses_bad_output_names(tmp_path, capsys, out, message):
    assert run_cli("export", SPARSE_CPU_CONFIG, "--out", str(tmp_path / out)) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_export_cli_writes_and_checks_a_program(tmp_path, capsys):
    out = tmp_path / "deploy" / "dense.pt2"
    assert run_cli("export", SPARSE_CPU_CONFIG, "--dense-twin", "--input-size", "32x64",
                   "--out", str(out), "--check") == 0
    printed = capsys.readouterr().out
    assert out.is_file() and "dense twin" in printed and ": OK" in printed
