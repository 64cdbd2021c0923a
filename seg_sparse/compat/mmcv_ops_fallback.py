"""A pure-torch ``mmcv.ops`` for mmcv-lite (no compiled ``mmcv._ext``).

mmseg 1.2.2 imports ``mmcv.ops`` unconditionally in a few modules (``point_sample``,
``sigmoid_focal_loss``) and optionally (``try: ... except ModuleNotFoundError``) elsewhere. With
mmcv-lite the real ``mmcv.ops`` fails on ``mmcv._ext``, so nothing of mmseg's model zoo imports.
:func:`install` registers a small module object as ``sys.modules['mmcv.ops']`` that provides the
ops the toolkit needs and answers any other name with a ``ModuleNotFoundError`` (which is what
mmseg's optional imports expect). With a compiled mmcv installed, :func:`install` does nothing.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
import warnings

import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss as _tv_sigmoid_focal_loss

from .deform_conv import (
    DeformConv2d,
    DeformConv2dPack,
    ModulatedDeformConv2d,
    ModulatedDeformConv2dPack,
)

FALLBACK_MARKER = "__seg_sparse_fallback__"


def point_sample(input: Tensor, points: Tensor, align_corners: bool = False, **kwargs) -> Tensor:
    """Bilinearly sample ``input`` (N, C, H, W) at ``points`` in [0, 1] x [0, 1], given as (x, y).

    ``points`` is (N, P, 2) -> output (N, C, P), or (N, Hg, Wg, 2) -> (N, C, Hg, Wg); extra
    keyword arguments go to :func:`torch.nn.functional.grid_sample` (mmcv's semantics).
    """
    squeeze = points.dim() == 3
    grid = points.unsqueeze(2) if squeeze else points
    output = F.grid_sample(input, grid * 2.0 - 1.0, align_corners=align_corners, **kwargs)
    return output.squeeze(3) if squeeze else output


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


PROVIDED = {
    "point_sample": point_sample,
    "sigmoid_focal_loss": sigmoid_focal_loss,
    "DeformConv2d": DeformConv2d,
    "DeformConv2dPack": DeformConv2dPack,
    "ModulatedDeformConv2d": ModulatedDeformConv2d,
    "ModulatedDeformConv2dPack": ModulatedDeformConv2dPack,
}


def _missing_op(name: str) -> object:
    """Module ``__getattr__``: dunders stay AttributeError so introspection keeps working."""
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(f"module 'mmcv.ops' has no attribute {name!r}")
    raise ModuleNotFoundError(
        f"mmcv.ops.{name} needs a compiled mmcv (the 'mmcv._ext' extension), but only "
        f"mmcv-lite is installed; seg_sparse's fallback mmcv.ops provides only "
        f"{', '.join(sorted(PROVIDED))}. Install a compiled mmcv (mmcv, not mmcv-lite) to use "
        f"{name}.",
        name="mmcv._ext",
    )


def compiled_mmcv_available() -> bool:
    """True if mmcv's compiled extension can be found (then the real ``mmcv.ops`` is used)."""
    try:
        return importlib.util.find_spec("mmcv._ext") is not None
    except ModuleNotFoundError:  # no mmcv at all
        return False
    except ValueError:  # already imported, without a module spec
        return True


def is_fallback_installed() -> bool:
    return getattr(sys.modules.get("mmcv.ops"), FALLBACK_MARKER, False)


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

    module = types.ModuleType("mmcv.ops", __doc__)
    module.__spec__ = importlib.machinery.ModuleSpec("mmcv.ops", loader=None)
    module.__dict__.update(PROVIDED)
    module.__all__ = sorted(PROVIDED)  # type: ignore[attr-defined]
    module.__getattr__ = _missing_op  # type: ignore[method-assign]
    setattr(module, FALLBACK_MARKER, True)
    sys.modules["mmcv.ops"] = module
    mmcv.ops = module  # type: ignore[attr-defined]
    _register_dcn_in_models()
    _import_mmcv_transformer_quietly()
    return True


def _import_mmcv_transformer_quietly() -> None:
    """mmcv.cnn's transformer module warns 'install mmcv rather than mmcv-lite' when it cannot
    import MultiScaleDeformableAttention; with the fallback in place that advice only confuses,
    so import it once here with that one warning filtered."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Fail to import ``MultiScaleDeformableAttention")
        import mmcv.cnn.bricks.transformer  # noqa: F401


__all__ = [
    "compiled_mmcv_available",
    "install",
    "is_fallback_installed",
    "point_sample",
    "sigmoid_focal_loss",
]
