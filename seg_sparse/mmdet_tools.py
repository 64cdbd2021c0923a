"""Run one of mmdetection's own tools with seg_sparse loaded first.

mmdet's ``tools/test.py`` (shipped in the wheel as ``mmdet/.mim/tools/test.py``) imports
``mmdet.evaluation`` before it reads the config, so without a compiled mmcv it fails on
``mmcv.ops`` before the config's ``custom_imports`` could install seg_sparse's fallback. This
launcher imports seg_sparse (fallback ops, registrations) and then runs the unchanged tool as
``__main__`` with the remaining arguments::

    python -m seg_sparse.mmdet_tools test CONFIG CHECKPOINT [mmdet's test.py options]
    python -m seg_sparse.mmdet_tools train CONFIG [options]   # train.py also runs directly

``TOOL`` is a path under ``mmdet/.mim/tools`` without ``.py`` (``test``, ``train``,
``analysis_tools/browse_dataset``, ...).
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

USAGE = "usage: python -m seg_sparse.mmdet_tools TOOL [ARGS ...]   (TOOL: test, train, ...)"


def tools_dir() -> Path:
    """``mmdet/.mim/tools`` of the installed mmdet."""
    import mmdet

    return Path(mmdet.__file__).parent / ".mim" / "tools"


def tool_path(name: str) -> Path:
    """The script of tool ``name``; FileNotFoundError listing the top-level tools if absent."""
    root = tools_dir()
    path = (root / name).with_suffix(".py")
    if ".." in Path(name).parts or not path.is_file():
        available = sorted(p.stem for p in root.glob("*.py"))
        raise FileNotFoundError(f"mmdet has no tool '{name}' under {root} (top-level tools: "
                                f"{', '.join(available)})")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE + "\n\n" + __doc__.split("\n\n", 1)[1])
        return 0 if argv else 2
    try:
        path = tool_path(argv[0])
    except FileNotFoundError as err:
        print(f"seg_sparse.mmdet_tools: error: {err}", file=sys.stderr)
        return 2
    import seg_sparse  # noqa: F401  (mmcv.ops fallback, model / metric / hook registrations)

    sys.argv = [str(path), *argv[1:]]
    runpy.run_path(str(path), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
