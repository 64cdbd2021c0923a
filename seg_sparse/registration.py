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
import importlib.machinery
import sys
import types
from typing import Any

#: Already imported: register at once.
IMMEDIATE = ("mmengine", "mmseg", "mmdet")
#: Register right after the first of these finishes importing.
DEFERRED = ("mmseg", "mmdet")
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
    """Finds ``mmseg`` / ``mmdet`` with the other finders and registers once it has run; hands
    out the mmcv.ops fallback when ``mmcv.ops`` is imported before either."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname == MMCV_OPS and not _registered:
            return _mmcv_ops_fallback_spec()
        if fullname not in DEFERRED or _registered:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


MMCV_OPS = "mmcv.ops"


def _mmcv_ops_fallback_spec() -> importlib.machinery.ModuleSpec | None:
    """The fallback ``mmcv.ops`` when mmcv's compiled ops are missing (else None: the real one).

    ``mmcv`` itself is imported by now (the parent of ``mmcv.ops``)."""
    from seg_sparse.compat.mmcv_ops_fallback import install

    if not install():
        return None
    return sys.modules[MMCV_OPS].__spec__  # its loader returns the installed package


class _RegisteringLoader(importlib.abc.Loader):
    """The real loader, then :func:`register_all_modules`; the module keeps the real one."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        register_all_modules()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


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
