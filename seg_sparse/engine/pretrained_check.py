"""A loud warning when a backbone that expects pretrained weights trains without them.

The paper-scale detection configs freeze the stem (``frozen_stages=0``) and keep BatchNorm
statistics fixed (``norm_eval=True``), as the authors did, because they start from ImageNet
weights (``init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')``). Without
them (``init_cfg`` overridden, e.g. to avoid the download) the frozen layers and the BN
statistics stay at their random initialisation for the whole run, and nothing says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from torch import nn


def frozen_without_pretrained(model: nn.Module, load_from: str | None) -> str | None:
    """The warning for ``model``'s backbone if it freezes layers or BN statistics while neither
    a ``Pretrained`` init_cfg nor ``load_from`` gives it trained weights; else None."""
    backbone = getattr(model, "backbone", None)
    if backbone is None or load_from:
        return None
    frozen_stages = getattr(backbone, "frozen_stages", -1)
    norm_eval = bool(getattr(backbone, "norm_eval", False))
    if frozen_stages < 0 and not norm_eval:
        return None
    init_cfgs = backbone.init_cfg if isinstance(backbone.init_cfg, list) else [backbone.init_cfg]
    if any(isinstance(c, Mapping) and c.get("type") == "Pretrained" for c in init_cfgs):
        return None
    frozen = []
    if frozen_stages >= 0:
        frozen.append(f"the stem and stages 1-{frozen_stages} (frozen_stages={frozen_stages}) "
                      "are never trained" if frozen_stages else
                      "the stem (frozen_stages=0) is never trained")
    if norm_eval:
        frozen.append("BatchNorm keeps its initial statistics (norm_eval=True)")
    return ("TRAINING WITHOUT PRETRAINED WEIGHTS: model.backbone has no Pretrained init_cfg "
            "and there is no load_from, so "
            f"{' and '.join(frozen)}: they stay at their random initialisation for the whole "
            "run. The paper's configs start from ImageNet weights (model.backbone.init_cfg="
            "dict(type='Pretrained', checkpoint='torchvision://resnet101')); to train from "
            "scratch on purpose, set model.backbone.frozen_stages=-1 "
            "model.backbone.norm_eval=False.")


def warn_if_frozen_without_pretrained(runner: Any) -> None:
    """Log :func:`frozen_without_pretrained`'s warning for the runner's model, if any."""
    from mmengine.logging import print_log
    from mmengine.model import is_model_wrapper

    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    message = frozen_without_pretrained(model, runner.cfg.get("load_from"))
    if message:
        banner = "!" * 100
        print_log(f"\n{banner}\n{message}\n{banner}", logger="current", level=logging.WARNING)
