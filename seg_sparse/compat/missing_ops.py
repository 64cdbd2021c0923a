"""Stand-ins for mmcv ops that need compiled kernels (``mmcv._ext``).

mmdet and mmseg import many ``mmcv.ops`` names at module load although a given model uses few
of them. Without a compiled mmcv those names still import (so the modules that mention them
load), and fail only when a model really builds or calls one, with a ``ModuleNotFoundError``
that names the op (mmseg's and mmdet's optional-op code catches that error type).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

#: Names the fallback ``mmcv.ops`` implements; filled in by :mod:`.mmcv_ops_fallback` and used
#: in the error message.
AVAILABLE: set[str] = set()


def missing_op_error(name: str) -> ModuleNotFoundError:
    """The error for an mmcv op that only a compiled mmcv provides."""
    provided = ", ".join(sorted(AVAILABLE)) or "none"
    return ModuleNotFoundError(
        f"mmcv.ops.{name} needs a compiled mmcv (the 'mmcv._ext' extension), but only "
        f"mmcv-lite is installed; seg_sparse's fallback mmcv.ops provides {provided}. Install "
        f"a compiled mmcv (mmcv, not mmcv-lite) to use {name}.",
        name="mmcv._ext",
    )


def missing_class(name: str, module: str) -> type[nn.Module]:
    """A class that can be imported and subclassed but raises when instantiated."""

    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        raise missing_op_error(name)

    doc = f"Placeholder for mmcv's compiled op {name}: raises ModuleNotFoundError when built."
    return type(name, (nn.Module,), {"__init__": __init__, "__module__": module, "__doc__": doc})


def missing_function(name: str, module: str) -> Callable[..., Any]:
    """A function that raises when called."""

    def placeholder(*args: Any, **kwargs: Any) -> Any:
        raise missing_op_error(name)

    placeholder.__name__ = placeholder.__qualname__ = name
    placeholder.__module__ = module
    placeholder.__doc__ = f"Placeholder for mmcv's compiled op {name}: raises when called."
    return placeholder
