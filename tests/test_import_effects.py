"""What ``import seg_sparse`` changes process-wide (docs/design.md, "What `import seg_sparse`
changes"): each change observed in a fresh interpreter, before and after the import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = r"""
import json, sys
import torch
from mmengine.analysis import complexity_analysis as analysis
from mmengine.fileio import io as file_io
from mmengine.registry import HOOKS as ROOT_HOOKS, MODEL_WRAPPERS, MODELS
from mmengine.runner import CheckpointLoader


def observe():
    ops = sys.modules.get("mmcv.ops")
    return {
        "mmcv_ops": None if ops is None else bool(getattr(ops, "__seg_sparse_fallback__", 0)),
        "models": {n: repr(MODELS.module_dict.get(n)) for n in ("DCN", "DCNv2", "SyncBN")},
        "wrappers": sorted(MODEL_WRAPPERS.module_dict),
        "safe_globals": sorted(map(repr, torch.serialization.get_safe_globals())),
        "loaders": sorted({f"{l.__module__}.{l.__name__}"
                           for l in CheckpointLoader._schemes.values()}),
        "schemes": sorted(CheckpointLoader._schemes),
        "backends": {n: repr(b) for n, b in file_io.backends.items()},
        "root_hooks": sorted(ROOT_HOOKS.module_dict),
        "flop_handles": {n: repr(h) for n, h in analysis._DEFAULT_SUPPORTED_FLOP_OPS.items()},
        "activation_handles": sorted(analysis._DEFAULT_SUPPORTED_ACT_OPS),
    }


before = observe()  # mmseg itself cannot be imported yet: it needs mmcv.ops
import seg_sparse  # noqa: E402
from mmdet.registry import HOOKS as DET_HOOKS  # noqa: E402
from mmseg.registry import HOOKS  # noqa: E402

print(json.dumps({"before": before, "after": observe(),
                  "mmseg_hooks": sorted(HOOKS.module_dict),
                  "mmdet_hooks": sorted(DET_HOOKS.module_dict)}))
"""
OUR_HOOKS = {"AtomicCheckpointHook", "SafeCheckpointHook", "SparseTemperatureHook",
             "SparseFlopsHook", "SparseVisualizationHook", "TestProgressHook"}


@pytest.fixture(scope="module")
def effects() -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            timeout=300, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_mmcv_ops_fallback_and_its_dcn_registrations(effects):
    from seg_sparse.compat import compiled_mmcv_available

    if compiled_mmcv_available():
        pytest.skip("compiled mmcv present: nothing is installed")
    before, after = effects["before"], effects["after"]
    assert before["mmcv_ops"] is None and after["mmcv_ops"] is True
    assert "None" in before["models"]["DCN"]
    assert "seg_sparse.compat.deform_conv.DeformConv2dPack" in after["models"]["DCN"]
    assert "seg_sparse.compat.deform_conv.ModulatedDeformConv2dPack" in after["models"]["DCNv2"]


def test_syncbn_and_ddp_wrapper_are_cpu_capable(effects):
    assert "CPUSyncBatchNorm" in effects["after"]["models"]["SyncBN"]
    assert "CPUCompatibleDistributedDataParallel" not in effects["before"]["wrappers"]
    assert "CPUCompatibleDistributedDataParallel" in effects["after"]["wrappers"]


def test_numpy_data_types_are_allowlisted_for_weights_only(effects):
    added = set(effects["after"]["safe_globals"]) - set(effects["before"]["safe_globals"])
    assert "<class 'numpy.ndarray'>" in added
    assert not any("ObjectDType" in g or "getattr" in g for g in effects["after"]["safe_globals"])


def test_every_checkpoint_scheme_gets_a_weights_only_loader(effects):
    before, after = effects["before"], effects["after"]
    assert before["schemes"] == after["schemes"]  # the same schemes, other loaders
    assert all(name.startswith("mmengine.runner.checkpoint.") for name in before["loaders"])
    assert all(name.startswith("seg_sparse.compat.checkpoint_schemes.")
               for name in after["loaders"])


def test_one_file_backend_is_added_and_none_replaced(effects):
    before, after = effects["before"], effects["after"]
    assert set(after["backends"]) - set(before["backends"]) == {"seg_sparse_atomic_local"}
    assert all(after["backends"][name] == value for name, value in before["backends"].items())


def test_mmengine_flop_counter_gets_the_dcn_handle_and_nothing_else_changes(effects):
    before, after = effects["before"], effects["after"]
    added = set(after["flop_handles"]) - set(before["flop_handles"])
    assert added == {"torchvision::deform_conv2d"}
    assert all(after["flop_handles"][name] == value
               for name, value in before["flop_handles"].items())
    assert set(after["activation_handles"]) - set(before["activation_handles"]) == added


def test_hooks_are_registered_in_the_mmseg_and_mmdet_scopes_only(effects):
    assert OUR_HOOKS <= set(effects["mmseg_hooks"])
    assert OUR_HOOKS <= set(effects["mmdet_hooks"])
    assert not OUR_HOOKS & set(effects["after"]["root_hooks"])


CORE_PROBE = r"""
import json, sys
import seg_sparse.sampling, seg_sparse.ops
heavy = ("mmseg", "mmdet", "mmcv", "mmengine", "matplotlib")
core = sorted(name for name in heavy if name in sys.modules)
import seg_sparse
registered_early = seg_sparse.is_registered()
from mmseg.apis import init_model  # registration follows mmseg's import
from mmseg.registry import MODELS
print(json.dumps({"core": core, "registered_early": registered_early,
                  "registered": seg_sparse.is_registered(),
                  "segmentor": repr(MODELS.get("SparseEncoderDecoder"))}))
"""


def test_the_plain_torch_core_imports_without_the_openmmlab_stack():
    """``import seg_sparse.sampling, seg_sparse.ops`` loads torch only; the registrations
    happen once mmseg is imported, so ``import seg_sparse`` then mmseg's APIs still work."""
    result = subprocess.run([sys.executable, "-c", CORE_PROBE], capture_output=True, text=True,
                            timeout=300, check=True)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["core"] == []
    assert found["registered_early"] is False
    assert found["registered"] is True
    assert "SparseEncoderDecoder" in found["segmentor"]
