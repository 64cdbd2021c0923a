"""A non-editable install must carry the configs the demo and the README examples use."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_every_config(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(REPO)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("seg_sparse-*.whl")
    shipped = {
        name.removeprefix("seg_sparse/configs/")
        for name in zipfile.ZipFile(wheel).namelist()
        if name.startswith("seg_sparse/configs/")
    }
    in_repo = {str(p.relative_to(REPO / "configs")) for p in (REPO / "configs").rglob("*.py")}
    assert in_repo and shipped == in_repo
    assert "cpu/sparse-fcn_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py" in shipped
