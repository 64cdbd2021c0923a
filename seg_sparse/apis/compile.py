"""``torch.compile`` for the toolkit's models: what ``--compile`` of ``seg-sparse train`` /
``test`` / ``bench`` does (docs/training.md, "Compiled training and testing").

Training uses mmengine's own switch: a config's ``compile = True`` (or a dict of
``torch.compile`` options) makes the Runner compile ``train_step``. Inference compiles the
network modules' forward in place: backbone, neck and heads run compiled, the
mmseg / mmdet code around them (data preprocessing, resizing, post-processing) eagerly.

Compiled, every sampling layer runs its masked path (the training computation) and draws its
noise from torch's global RNG (:mod:`seg_sparse.sampling.rng`); blocks and the sampled head
trace without a graph break, the deformable convolution is one opaque op
(:mod:`seg_sparse.ops.library`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: The modules of a segmentor or detector that :func:`compile_model` compiles, when present.
COMPILED_PARTS = ("backbone", "neck", "decode_head", "auxiliary_head", "rpn_head")


def compile_model(model: nn.Module, **options: Any) -> list[str]:
    """Compile the forward of the network modules of ``model`` (:data:`COMPILED_PARTS`) in
    place with ``torch.compile`` ``options``; returns the names compiled. Parameters,
    state-dict keys and hooks stay the module's own, so checkpoints load as before."""
    from mmengine.model import is_model_wrapper

    if is_model_wrapper(model):
        model = model.module
    compiled = []
    for name in COMPILED_PARTS:
        part = getattr(model, name, None)
        if isinstance(part, nn.Module) and not isinstance(part, (nn.ModuleList, nn.ModuleDict)):
            # the forward, not the call: mmseg's heads call self.forward() in loss / predict;
            # the module's own __call__ (its hooks) stays eager around it
            part.forward = torch.compile(part.forward, **options)
            compiled.append(name)
    return compiled


def enable_compiled_training(cfg: Any, options: dict[str, Any] | None = None) -> None:
    """Make mmengine's Runner compile ``train_step`` (the config's ``compile`` key) with
    ``torch.compile`` ``options`` (none: torch's defaults); a config that sets ``compile``
    already keeps its own options."""
    if cfg.get("compile"):
        return
    cfg.compile = dict(options) if options else True
