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

Under ``torchrun ... --launcher pytorch`` on a machine without CUDA, mmengine's own
distributed setup fails (``torch.cuda.set_device``; DDP with ``device_ids``). While the tool
runs, every Runner it builds from a config therefore gets seg_sparse's CPU setup first
(:func:`seg_sparse.engine.distributed.setup_cpu_distributed`: gloo with a 600 s timeout, the
CPU-capable DDP wrapper), as under ``seg-sparse train``; a rank that stops responding is named
(:func:`~seg_sparse.engine.distributed.reported_unresponsive_ranks`). With CUDA, or without a
launcher, nothing changes.
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
    from seg_sparse.engine.distributed import (
        RankUnresponsiveError,
        close_process_group,
        reported_unresponsive_ranks,
    )

    sys.argv = [str(path), *argv[1:]]
    try:
        with cpu_distributed_runners(), reported_unresponsive_ranks(None):
            runpy.run_path(str(path), run_name="__main__")
    except RankUnresponsiveError as err:
        print(f"seg_sparse.mmdet_tools: error: {err}", file=sys.stderr)
        return 1
    close_process_group()
    return 0


@contextmanager
def cpu_distributed_runners() -> Iterator[None]:
    """While the block runs, ``Runner.from_cfg`` (what mmdet's tools call, directly or through
    ``RUNNERS.build``) first applies seg_sparse's CPU distributed setup to the config and
    starts the rank's heartbeat once the Runner (and its process group) exists."""
    from mmengine.runner import Runner

    from seg_sparse.engine.distributed import setup_cpu_distributed, start_heartbeat

    original = Runner.__dict__["from_cfg"]

    def from_cfg(cls, cfg):  # noqa: ANN001, ANN202
        setup_cpu_distributed(cfg)
        runner = original.__func__(cls, cfg)
        start_heartbeat()
        return runner

    Runner.from_cfg = classmethod(from_cfg)
    try:
        yield
    finally:
        Runner.from_cfg = original


if __name__ == "__main__":
    sys.exit(main())
