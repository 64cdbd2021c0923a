"""Interpreter-start hook: mmseg and mmdet import on mmcv-lite in any order.

mmcv-lite has no compiled ``mmcv._ext``, and mmseg / mmdet import ``mmcv.ops`` while they load
their models, so ``from mmseg.apis import init_model`` fails unless seg_sparse (which installs
a pure-torch ``mmcv.ops``) was imported first. Installing seg-sparse puts
``seg_sparse_mmcv_hook.pth`` into site-packages; its one line runs :func:`install` at every
interpreter start. That only adds :class:`MmcvOpsHook` to ``sys.meta_path``: nothing else is
imported (no torch, no seg_sparse) and other imports pass through it untouched.

The hook steps in at the first import of ``mmseg``, ``mmdet`` or ``mmcv.ops``, unless
seg_sparse was imported before (then seg_sparse's own hook, :mod:`seg_sparse.registration`,
does the same). For mmseg and
mmdet it lets their top-level module run (it imports mmcv and mmengine, none of their
submodules) and then, if ``mmcv._ext`` is missing, hands over to
``seg_sparse.compat.mmcv_ops_fallback`` before the package's submodules load: at that point
no mmseg / mmdet module is half-imported, so importing seg_sparse cannot meet a circular
import. With a compiled mmcv it does nothing. Either way it removes itself after the first
hand-over.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

#: Packages whose submodules import mmcv.ops while loading.
WATCHED = frozenset({"mmseg", "mmdet"})
OPS = "mmcv.ops"


def _mmcv_without_ops() -> bool:
    """mmcv is installed but its compiled extension is not (mmcv-lite)."""
    import importlib.util

    try:
        return (importlib.util.find_spec("mmcv") is not None
                and importlib.util.find_spec("mmcv._ext") is None)
    except (ImportError, ValueError):
        return False


def hand_over() -> None:
    """Remove the hook; on mmcv-lite install seg_sparse's pure-torch ``mmcv.ops``."""
    uninstall()
    if _mmcv_without_ops():
        from seg_sparse.compat import mmcv_ops_fallback

        mmcv_ops_fallback.install()


class RunAfterExec:
    """Wraps a module's loader: runs the module, then ``callback()`` (the module keeps its
    own loader)."""

    def __init__(self, loader: object, callback: Callable[[], None]) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: object) -> object:
        return self._loader.create_module(spec)

    def exec_module(self, module: object) -> None:
        module.__loader__ = module.__spec__.loader = self._loader  # leave no trace
        self._loader.exec_module(module)
        self._callback()

    def __getattr__(self, name: str) -> object:  # resource readers, get_source, ...
        return getattr(self._loader, name)


def spec_running_after(finder: object, fullname: str, path: object, target: object,
                       callback: Callable[[], None]) -> object:
    """``fullname``'s spec from the other finders on ``sys.meta_path``, its loader wrapped to
    call ``callback`` once the module has run (None if no finder knows it)."""
    for other in sys.meta_path:
        if other is finder or not hasattr(other, "find_spec"):
            continue
        spec = other.find_spec(fullname, path, target)
        if spec is not None:
            if spec.loader is not None:
                spec.loader = RunAfterExec(spec.loader, callback)
            return spec
    return None


class MmcvOpsHook:
    """Meta-path finder that answers only for :data:`WATCHED` packages and ``mmcv.ops``."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if "seg_sparse" in sys.modules:  # imported first: its own import hook does the rest
            return None
        if fullname == OPS:  # imported directly: nothing of mmseg / mmdet is half-imported
            hand_over()  # the fallback is in sys.modules now, or the compiled ops load
            return None
        if fullname not in WATCHED:
            return None
        return spec_running_after(self, fullname, path, target, hand_over)


def install() -> None:
    """Put :class:`MmcvOpsHook` first on ``sys.meta_path`` (idempotent)."""
    if not any(isinstance(f, MmcvOpsHook) for f in sys.meta_path):
        sys.meta_path.insert(0, MmcvOpsHook())


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, MmcvOpsHook)]


def is_installed() -> bool:
    return any(isinstance(f, MmcvOpsHook) for f in sys.meta_path)
