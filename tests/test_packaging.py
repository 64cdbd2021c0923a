"""A non-editable install carries the configs the demo and the README examples use, and both a
regular and an editable (``pip install -e .``, what CI uses) install carry the interpreter-start
hook that lets mmseg / mmdet import before seg_sparse (docs/compatibility.md)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HOOK_PTH = "seg_sparse_mmcv_hook.pth"


def _build(kind: str, out: Path) -> zipfile.ZipFile:
    if kind == "wheel":
        cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
               "-w", str(out), str(REPO)]
    else:  # what `pip install -e .` builds (PEP 660), with this environment's setuptools
        cmd = [sys.executable, "-c",
               f"from setuptools import build_meta; build_meta.build_editable({str(out)!r})"]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = out.glob("seg_sparse-*.whl")
    return zipfile.ZipFile(wheel)


@pytest.mark.slow
def test_wheel_ships_every_config_and_the_start_hook(tmp_path: Path) -> None:
    wheel = _build("wheel", tmp_path)
    shipped = {
        name.removeprefix("seg_sparse/configs/")
        for name in wheel.namelist()
        if name.startswith("seg_sparse/configs/")
    }
    in_repo = {str(p.relative_to(REPO / "configs")) for p in (REPO / "configs").rglob("*.py")}
    assert in_repo and shipped == in_repo
    assert "cpu/sparse-fcn_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py" in shipped
    # at the top of the wheel, i.e. in site-packages, where `site` runs .pth files
    assert wheel.read(HOOK_PTH) == (REPO / HOOK_PTH).read_bytes()
    assert wheel.read("seg_sparse_mmcv_hook.py") == (REPO / "seg_sparse_mmcv_hook.py").read_bytes()


@pytest.mark.slow
def test_editable_wheel_ships_the_start_hook(tmp_path: Path) -> None:
    wheel = _build("editable", tmp_path)
    assert wheel.read(HOOK_PTH) == (REPO / HOOK_PTH).read_bytes()
    # the hook module is imported from the checkout through the editable finder, which
    # site runs first (its .pth sorts before seg_sparse_mmcv_hook.pth)
    (finder,) = [n for n in wheel.namelist() if n.endswith("_finder.py")]
    assert f"'seg_sparse_mmcv_hook': '{REPO / 'seg_sparse_mmcv_hook'}'" in wheel.read(
        finder).decode()
    (editable_pth,) = [n for n in wheel.namelist() if n.startswith("__editable__")
                       and n.endswith(".pth")]
    assert sorted([editable_pth, HOOK_PTH])[0] == editable_pth
