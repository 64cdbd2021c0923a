"""Operator handles that make mmengine's FLOP counter count seg-sparse models right.

``mmengine.analysis`` (``get_model_complexity_info``, ``FlopAnalyzer``, and mmseg's
``tools/analysis_tools/get_flops.py`` on top of them) traces the model with ``torch.jit`` and
counts each operator of the graph with a handle. It has none for ``torchvision::deform_conv2d``,
the deformable convolution of stages conv3-conv5 (``seg_sparse.ops.deform_conv2d`` runs
torchvision's operator when traced), so it skipped every DCN with a warning: 1.040 instead of
1.390 GFLOPs on the demo's dense twin. :func:`register_mmengine_handles` (run when seg_sparse
registers its modules) adds the handle to mmengine's defaults, so every analyzer built after it
counts the DCN like a convolution: weight size x output positions, the convention of
docs/design.md ("FLOPs convention") and of mmengine's own ``conv`` handle.

Everything else the sampled layers run when traced (the masked path, docs/analysis.md) is
already covered by mmengine's handles: the mask predictors and the Gaussian interpolation are
convolutions and matrix products; the draws and the elementwise mask arithmetic are not
multiply-accumulates.
"""

from __future__ import annotations

from math import prod
from typing import Any

#: The traced name of torchvision's deformable convolution.
DEFORM_CONV_OP = "torchvision::deform_conv2d"


def deform_conv_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """MACs of one ``torchvision::deform_conv2d(input, weight, offset, mask, bias, ...)`` call:
    ``Cout * Cin / groups * kh * kw`` (the weight's size) times batch x output positions."""
    from mmengine.analysis.jit_handles import get_shape

    weight, out = get_shape(inputs[1]), get_shape(outputs[0])
    return prod(weight) * out[0] * prod(out[2:])


def register_mmengine_handles() -> None:
    """Add the DCN handles to mmengine's default FLOP and activation handles (idempotent).

    mmengine reads its defaults when an analyzer is built, so this must run before: seg_sparse
    calls it when it registers its modules, i.e. on ``import seg_sparse`` and through a
    config's ``custom_imports``.
    """
    from mmengine.analysis import complexity_analysis as analysis
    from mmengine.analysis.jit_handles import generic_activation_jit

    analysis._DEFAULT_SUPPORTED_FLOP_OPS.setdefault(DEFORM_CONV_OP, deform_conv_flop_jit)
    analysis._DEFAULT_SUPPORTED_ACT_OPS.setdefault(DEFORM_CONV_OP, generic_activation_jit())
