"""Imports point one way: sampling/ is plain torch, library code never imports the CLI, and the
CLI, the analysis commands and the demo read configs through one function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seg_sparse"


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _modules(folder: str = "") -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("sampling"), ids=lambda p: p.name)
def test_sampling_is_plain_torch(path):
    forbidden = [n for n in _imports(path) if n.split(".")[0] in ("mmseg", "mmengine", "mmcv",
                                                                  "mmdet")]
    assert forbidden == []


@pytest.mark.parametrize("path", [p for p in _modules() if "cli" not in p.parts],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_library_code_never_imports_the_cli(path):
    assert [n for n in _imports(path) if n.startswith("seg_sparse.cli")] == []


def test_one_config_loader_serves_cli_analysis_and_demo():
    users = {str(p.relative_to(PACKAGE)) for p in _modules()
             if "seg_sparse.apis.load_config" in _imports(p)
             or "seg_sparse.apis.config.load_config" in _imports(p)}
    assert {"cli/common.py", "cli/flops.py", "analysis/loading.py",
            "demo/training.py"} <= users
    readers = [str(p.relative_to(PACKAGE)) for p in _modules()
               if "Config.fromfile" in p.read_text()]
    assert readers == ["apis/config_file.py"]  # nothing else reads a config file
