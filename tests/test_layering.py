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


#: The package's parts from the bottom up: a part imports only parts before it (function-level
#: imports included), so no import runs back up and there is no circle. docs/design.md,
#: "Layers and dependencies", shows the table :func:`import_table` draws from the code.
LAYERS = ("errors", "fileio", "outputs", "ops", "sampling", "flops", "data", "compat",
          "registration", "__init__", "datasets", "models", "visualization", "evaluation",
          "engine", "apis", "analysis", "benchmark", "demo", "cli", "mmdet_tools")


def _part(module: str) -> str:
    """The part of the package a module (or a name imported from the package) belongs to."""
    parts = module.split(".")
    if len(parts) > 1 and ((PACKAGE / parts[1]).is_dir()
                           or (PACKAGE / f"{parts[1]}.py").is_file()):
        return parts[1]
    return "__init__"


def part_imports() -> dict[str, dict[str, list[str]]]:
    """part -> imported part -> the files of ``part`` that import it."""
    found: dict[str, dict[str, list[str]]] = {}
    for path in _modules():
        source = _part(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if path.name == "__init__.py" and path.parent == PACKAGE:
            source = "__init__"
        for name in _imports(path):
            if name != "seg_sparse" and not name.startswith("seg_sparse."):
                continue
            target = _part(name)
            if target != source:
                files = found.setdefault(source, {}).setdefault(target, [])
                if str(path.relative_to(PACKAGE)) not in files:
                    files.append(str(path.relative_to(PACKAGE)))
    return found


def import_table() -> str:
    """The markdown table of docs/design.md: each part and the parts it imports."""
    found = part_imports()
    rows = ["| part | imports |", "|---|---|"]
    for part in LAYERS:
        targets = sorted(found.get(part, {}), key=LAYERS.index)
        rows.append(f"| `{part}` | {', '.join(f'`{t}`' for t in targets) or '-'} |")
    return "\n".join(rows)


def test_every_part_is_placed_in_the_layers():
    parts = {_part(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts))
             for p in _modules() if p.parent != PACKAGE or p.name != "__init__.py"}
    assert parts - set(LAYERS) == set()


def test_imports_point_down_the_layers():
    upward = [f"{source} -> {target} ({', '.join(files)})"
              for source, targets in part_imports().items()
              for target, files in targets.items()
              if LAYERS.index(target) > LAYERS.index(source)]
    assert upward == []


def test_the_design_doc_shows_the_import_table_of_the_code():
    design = (PACKAGE.parent / "docs" / "design.md").read_text()
    assert import_table() in design, "regenerate with: python -c 'import sys; " \
        "sys.path.insert(0, \"tests\"); import test_layering as t; print(t.import_table())'"


def _module_exists(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_import_of_the_package_names_a_module_that_exists(path):
    """Function-level imports run only when called: a stale path after a move would surface
    as an ImportError in the middle of a command."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    missing = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            names = [".".join(p for p in (base, node.module or "") if p)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        missing += [n for n in names if n.split(".")[0] == "seg_sparse" and not _module_exists(n)]
    assert missing == []
