"""A pure-torch ``mmcv.ops`` package for mmcv-lite (no compiled ``mmcv._ext``).

mmcv-lite ships the python files of ``mmcv.ops`` but not their kernels, so importing the real
package fails and with it mmseg's and mmdet's model zoos. :func:`install` registers, only when
``mmcv._ext`` is missing, a package object as ``sys.modules['mmcv.ops']`` whose names resolve,
by mmcv's own export list (read from mmcv-lite's ``mmcv/ops/__init__.py`` without running it):

* to seg_sparse's implementations (:data:`PROVIDED`): torchvision-backed DCN / DCNv2, NMS,
  ``batched_nms``, RoIAlign, RoIPool, and the sigmoid focal loss;
* to mmcv-lite's own modules that need no kernel (:data:`PURE_MODULES`: ``point_sample``,
  ``CornerPool``, the NAS-FPN merge cells, criss-cross attention, ...), loaded from its files;
* to placeholders for everything else (:mod:`.missing_ops`): importable, but building or
  calling one raises ``ModuleNotFoundError`` naming the op.

Submodules (``from mmcv.ops.nms import batched_nms``) resolve the same way, through a finder
that answers only for ``mmcv.ops.<name>``. With a compiled mmcv, :func:`install` does nothing.
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings
from functools import cache
from pathlib import Path
from typing import Any

from torch import Tensor
from torchvision.ops import sigmoid_focal_loss as _tv_sigmoid_focal_loss

from . import detection_ops
from .deform_conv import (
    DeformConv2d,
    DeformConv2dPack,
    ModulatedDeformConv2d,
    ModulatedDeformConv2dPack,
)
from .missing_ops import AVAILABLE, missing_class, missing_function, missing_op_error

FALLBACK_MARKER = "__seg_sparse_fallback__"
PACKAGE = "mmcv.ops"


def sigmoid_focal_loss(
    input: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: float = 0.25,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """mmcv's sigmoid focal loss: ``target`` holds class indices, ``num_classes`` = background.

    ``weight`` is per class (C,); ``'mean'`` divides the sum by the number of samples, as mmcv's
    kernel does. mmseg calls it only for CUDA tensors, but imports it at module load.
    """
    import torch.nn.functional as F

    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    num_classes = input.size(1)
    one_hot = F.one_hot(target.long(), num_classes + 1)[:, :num_classes].type_as(input)
    loss = _tv_sigmoid_focal_loss(input, one_hot, alpha=alpha, gamma=gamma, reduction="none")
    if weight is not None:
        loss = loss * weight.view(1, -1)
    if reduction == "mean":
        return loss.sum() / input.size(0)
    return loss.sum() if reduction == "sum" else loss


#: Our implementations, by the mmcv.ops submodule that defines the name in mmcv.
PROVIDED: dict[str, dict[str, Any]] = {
    "deform_conv": {"DeformConv2d": DeformConv2d, "DeformConv2dPack": DeformConv2dPack},
    "modulated_deform_conv": {"ModulatedDeformConv2d": ModulatedDeformConv2d,
                              "ModulatedDeformConv2dPack": ModulatedDeformConv2dPack},
    "focal_loss": {"sigmoid_focal_loss": sigmoid_focal_loss},
    "nms": {"nms": detection_ops.nms, "batched_nms": detection_ops.batched_nms},
    "roi_align": {"RoIAlign": detection_ops.RoIAlign, "roi_align": detection_ops.roi_align},
    "roi_pool": {"RoIPool": detection_ops.RoIPool, "roi_pool": detection_ops.roi_pool},
}
#: mmcv-lite modules in plain python / torch: imported from mmcv-lite's own files.
PURE_MODULES = ("point_sample", "corner_pool", "merge_cells", "cc_attention", "conv2d_gradfix",
                "deprecated_wrappers")


@cache
def _ops_dir() -> Path:
    spec = importlib.util.find_spec("mmcv")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "ops"


@cache
def mmcv_exports() -> dict[str, tuple[str, str]]:
    """mmcv.ops' public names -> (submodule, name there), from its ``__init__.py``'s top-level
    relative imports (the MLU-only names under ``if`` are left out)."""
    tree = ast.parse((_ops_dir() / "__init__.py").read_text())
    exports = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                exports[alias.asname or alias.name] = (node.module, alias.name)
    return exports


@cache
def _definitions(submodule: str) -> dict[str, str]:
    """Top-level names of an mmcv.ops source file -> 'class' or 'function'."""
    path = _ops_dir() / f"{submodule}.py"
    if not path.is_file():
        return {}
    names: dict[str, str] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = "class"
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = "function"
        elif isinstance(node, ast.Assign):  # e.g. roi_align = RoIAlignFunction.apply
            names.update((t.id, "function") for t in node.targets if isinstance(t, ast.Name))
    return names


def _submodule_getattr(submodule: str) -> Any:
    qualified = f"{PACKAGE}.{submodule}"
    kinds = _definitions(submodule)

    def __getattr__(name: str) -> Any:
        kind = kinds.get(name)
        if kind is None or name.startswith("__"):
            raise AttributeError(f"module {qualified!r} has no attribute {name!r}")
        placeholder = (missing_class if kind == "class" else missing_function)(name, qualified)
        setattr(sys.modules[qualified], name, placeholder)  # one object per name
        return placeholder

    return __getattr__


class _SubmoduleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``mmcv.ops.<name>``: mmcv-lite's file for pure modules, else a module object with
    our implementations and placeholders for the rest of that file's names."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        package, _, submodule = fullname.rpartition(".")
        if package != PACKAGE or not is_fallback_installed():
            return None
        if submodule in PURE_MODULES:
            return importlib.util.spec_from_file_location(fullname,
                                                          _ops_dir() / f"{submodule}.py")
        if submodule in PROVIDED or _definitions(submodule):
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        submodule = spec.name.rpartition(".")[2]
        module = types.ModuleType(spec.name, f"seg_sparse's fallback for {spec.name}")
        module.__dict__.update(PROVIDED.get(submodule, {}))
        module.__getattr__ = _submodule_getattr(submodule)  # type: ignore[method-assign]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _BuiltPackageLoader(importlib.abc.Loader):
    """The fallback package's loader: the package is built by :func:`install`, so importing
    ``mmcv.ops`` through its spec (as an import hook may) returns it unchanged."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return sys.modules[spec.name]

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _OpsPackage(types.ModuleType):
    """The fallback package. Importing a submodule makes Python set it as an attribute of the
    package; where mmcv exports an op of the same name (``nms``, ``roi_align``,
    ``point_sample``) the op is kept, as mmcv's own ``__init__`` leaves it."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in mmcv_exports():
            return
        super().__setattr__(name, value)


def _package_getattr(name: str) -> Any:
    """Top-level ``mmcv.ops.<name>``: through the submodule mmcv defines it in."""
    target = mmcv_exports().get(name)
    if target is None or name.startswith("__"):
        raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
    submodule, original = target
    value = getattr(importlib.import_module(f"{PACKAGE}.{submodule}"), original)
    setattr(sys.modules[PACKAGE], name, value)
    return value


def compiled_mmcv_available() -> bool:
    """True if mmcv's compiled extension can be found (then the real ``mmcv.ops`` is used)."""
    try:
        return importlib.util.find_spec("mmcv._ext") is not None
    except ModuleNotFoundError:  # no mmcv at all
        return False
    except ValueError:  # already imported, without a module spec
        return True


def is_fallback_installed() -> bool:
    return getattr(sys.modules.get(PACKAGE), FALLBACK_MARKER, False)


def _register_dcn_in_models() -> None:
    """Register 'DCN' / 'DCNv2' in mmengine's root MODELS, where mmcv.ops would put them."""
    from mmengine.registry import MODELS

    MODELS.register_module("DCN", module=DeformConv2dPack, force=True)
    MODELS.register_module("DCNv2", module=ModulatedDeformConv2dPack, force=True)


def install() -> bool:
    """Install the fallback ``mmcv.ops`` if mmcv is present without compiled ops.

    Returns True if the fallback is (now) in place. Idempotent.
    """
    if is_fallback_installed():
        return True
    if importlib.util.find_spec("mmcv") is None or compiled_mmcv_available():
        return False
    import mmcv

    module = _OpsPackage(PACKAGE, __doc__)
    module.__spec__ = importlib.machinery.ModuleSpec(PACKAGE, loader=_BuiltPackageLoader(),
                                                     is_package=True)
    module.__path__ = []  # a package: submodules come from _SubmoduleFinder only
    for names in PROVIDED.values():
        module.__dict__.update(names)
        AVAILABLE.update(names)
    AVAILABLE.update(name for name, (sub, _) in mmcv_exports().items() if sub in PURE_MODULES)
    module.__all__ = sorted(mmcv_exports())  # type: ignore[attr-defined]
    module.__getattr__ = _package_getattr  # type: ignore[method-assign]
    setattr(module, FALLBACK_MARKER, True)
    sys.modules[PACKAGE] = module
    mmcv.ops = module  # type: ignore[attr-defined]
    if not any(isinstance(f, _SubmoduleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SubmoduleFinder())
    _register_dcn_in_models()
    _import_mmcv_transformer_quietly()
    return True


def _import_mmcv_transformer_quietly() -> None:
    """mmcv.cnn's transformer module warns about where MultiScaleDeformableAttention lives when
    importing it works (here: its placeholder); that advice only confuses, so import it once with
    the warning filtered."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*MultiScaleDeformableAttention")
        import mmcv.cnn.bricks.transformer  # noqa: F401


__all__ = [
    "PROVIDED",
    "PURE_MODULES",
    "compiled_mmcv_available",
    "install",
    "is_fallback_installed",
    "missing_op_error",
    "mmcv_exports",
    "sigmoid_focal_loss",
]
