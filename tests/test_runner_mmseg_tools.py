"""The (tiny) CPU config runs unchanged under mmseg's own tools/train.py and tools/test.py."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import mmseg
import pytest
from cli_support import tiny_config

TOOLS = Path(mmseg.__file__).parent / ".mim" / "tools"

pytestmark = pytest.mark.slow


def _data_root_options(root: Path) -> list[str]:
    return [f"{loader}.dataset.data_root={root}"
            for loader in ("train_dataloader", "val_dataloader", "test_dataloader")]


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(TOOLS / script), *args], cwd=cwd,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_mmseg_tools_train_then_test(synthcity, tmp_path):
    config = tiny_config(tmp_path, iters=1)
    options = _data_root_options(synthcity)
    work_dir = tmp_path / "work"
    _run("train.py", config, "--work-dir", str(work_dir), "--cfg-options", *options,
         cwd=tmp_path)
    checkpoint = work_dir / "iter_1.pth"
    assert checkpoint.is_file()

    test_dir = tmp_path / "test"
    _run("test.py", config, str(checkpoint), "--work-dir", str(test_dir),
         "--cfg-options", *options, cwd=tmp_path)
    (metrics_file,) = test_dir.glob("*/*.json")  # mmengine dumps the test metrics here
    metrics = json.loads(metrics_file.read_text())
    assert math.isfinite(metrics["mIoU"]) and 0 <= metrics["mIoU"] <= 100
