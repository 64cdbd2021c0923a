"""When ``import seg_sparse`` registers the toolkit with mmengine, mmseg and mmdet.

The registrations (the mmcv.ops fallback, safe checkpoint loading, CPU SyncBN, the models,
datasets, transforms, hooks and metrics; docs/design.md, "What `import seg_sparse` changes")
need mmseg and mmdet, which take seconds to import and are not needed by the plain-torch core
(:mod:`seg_sparse.sampling`, :mod:`seg_sparse.ops`). So importing the package registers:

* at once, when mmengine, mmseg or mmdet is already imported -- every config's
  ``custom_imports=dict(imports=['seg_sparse'])``, the Runner, mmseg's and mmdet's tools;
* otherwise right after ``mmseg`` or ``mmdet`` is first imported (a one-shot import hook), so
  ``import seg_sparse; from mmseg.apis import init_model`` works as before; and if ``mmcv.ops``
  is imported first, the mmcv.ops fallback (only that) is put in place at that moment.

:func:`register_all_modules` does it explicitly (like mmseg's own ``register_all_modules``),
e.g. for a script that uses mmengine's Runner or checkpoint loader without mmseg or mmdet.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from typing import Any

from seg_sparse_mmcv_hook import spec_running_after

#: Already imported: register at once.
IMMEDIATE = ("mmengine", "mmseg", "mmdet")
#: Register right after the first of these finishes importing.
DEFERRED = ("mmseg", "mmdet")
MMCV_OPS = "mmcv.ops"
#: In this order; compat first: it must be in place before anything imports mmseg's models.
MODULES = ("compat", "datasets", "engine", "evaluation", "models")

_registered = False


def is_registered() -> bool:
    return _registered


def register_all_modules() -> None:
    """Register everything (once; later calls do nothing)."""
    global _registered
    if _registered:
        return
    _registered = True  # first: the imports below import mmseg / mmdet, which would re-enter
    _remove_hook()
    try:
        for name in MODULES:
            importlib.import_module(f"seg_sparse.{name}")
    except BaseException:
        _registered = False
        raise


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Registers once ``mmseg`` / ``mmdet`` has run; installs the mmcv.ops fallback when
    ``mmcv.ops`` is imported before either."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if _registered:
            return None
        if fullname == MMCV_OPS:  # the fallback is in sys.modules now (or compiled ops load)
            from seg_sparse.compat.mmcv_ops_fallback import install

            install()
            return None
        if fullname not in DEFERRED:
            return None
        return spec_running_after(self, fullname, path, target, register_all_modules)


def _remove_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RegisterAfterImport)]


def register_on_import() -> None:
    """What ``import seg_sparse`` does: register now or when mmseg / mmdet is imported."""
    if _registered:
        return
    if any(name in sys.modules for name in IMMEDIATE):
        register_all_modules()
    elif not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
