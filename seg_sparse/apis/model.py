"""A model from a config with a checkpoint loaded, refusing a checkpoint that does not fit.

mmengine loads test checkpoints with ``strict=False`` and only *warns* about missing or
unexpected keys, so a checkpoint of another architecture silently evaluates a partly random
model. :func:`check_checkpoint_matches` compares names and shapes first and refuses weights
that are not finite (a diverged training's checkpoint, digest-valid, evaluates to a plausible
looking but meaningless mIoU); :func:`load_weights` reads a checkpoint once (weights-only,
through mmengine's loader, any source), checks it and loads it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from seg_sparse.errors import UserInputError

_WRAPPER_PREFIX = re.compile(r"^module\.")


class CheckpointMismatchError(UserInputError, ValueError):
    """The checkpoint's state_dict does not match the model built from the config."""


class NonFiniteWeightsError(UserInputError, ValueError):
    """The checkpoint holds NaN or infinite weights or buffers."""


def checkpoint_state_dict(path: str) -> Mapping:
    """The ``state_dict`` of a checkpoint file (or the file itself if it is a bare state dict).

    Loads through mmengine's ``CheckpointLoader`` (weights-only safe loading via seg_sparse).
    """
    from mmengine.runner import CheckpointLoader

    checkpoint = CheckpointLoader.load_checkpoint(path, map_location="cpu")
    if not isinstance(checkpoint, Mapping):
        raise CheckpointMismatchError(f"checkpoint '{path}' holds a {type(checkpoint).__name__},"
                                      " not a state_dict")
    state = checkpoint.get("state_dict", checkpoint)
    return {_WRAPPER_PREFIX.sub("", k): v for k, v in state.items()}


def check_checkpoint_matches(model: nn.Module, path: str, max_listed: int = 5) -> None:
    """Raise :class:`CheckpointMismatchError` listing missing, unexpected and mismatched keys,
    :class:`NonFiniteWeightsError` naming tensors that hold NaN or Inf."""
    check_state_dict_matches(model, checkpoint_state_dict(path), path, max_listed)


def check_state_dict_matches(model: nn.Module, loaded: Mapping, path: str,
                             max_listed: int = 5) -> None:
    """:func:`check_checkpoint_matches` on an already loaded state dict (no second read)."""
    _check_names_and_shapes(model, loaded, path, max_listed)
    check_finite_weights(loaded, path, max_listed)


def check_finite_weights(state: Mapping, path: str, max_listed: int = 5) -> None:
    """Raise :class:`NonFiniteWeightsError` naming the tensors of ``state`` that hold NaN or
    infinite values (floating-point tensors: weights and buffers alike)."""
    bad = []
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                nan = int(torch.isnan(value).sum())
                bad.append(f"{name} ({nan} NaN, {int((~finite).sum()) - nan} Inf)")
    if bad:
        more = f" (+{len(bad) - max_listed} more)" if len(bad) > max_listed else ""
        raise NonFiniteWeightsError(
            f"checkpoint '{path}' holds non-finite weights in {len(bad)} tensor(s): "
            f"{', '.join(bad[:max_listed])}{more}; the training that wrote it diverged or the "
            "file was altered, and any metric computed with it would be meaningless")


def _check_names_and_shapes(model: nn.Module, loaded: Mapping, path: str,
                            max_listed: int) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(loaded))
    unexpected = sorted(set(loaded) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(loaded[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(loaded) & set(expected))
        if hasattr(loaded[k], "shape") and tuple(loaded[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    lines = [f"checkpoint '{path}' does not match the model built from the config "
             f"({type(model).__name__}); was it trained with another config?"]
    for title, keys in (("missing in checkpoint", missing),
                        ("unexpected in checkpoint", unexpected),
                        ("shape mismatch", mismatched)):
        if keys:
            more = f" (+{len(keys) - max_listed} more)" if len(keys) > max_listed else ""
            lines.append(f"  {len(keys)} {title}: " + ", ".join(keys[:max_listed]) + more)
    raise CheckpointMismatchError("\n".join(lines))


def build_eval_model(cfg) -> nn.Module:
    """The config's model in eval mode, SyncBN reverted to BN (no process group needed)."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from .config import ConfigError

    if "model" not in cfg:
        raise ConfigError("the config has no 'model'")
    init_default_scope(cfg.get("default_scope", "mmseg"))
    model = revert_sync_batchnorm(MODELS.build(cfg.model))  # SyncBN needs a process group
    model.eval()  # not chained: mmseg's ResNet.train() returns None (a bare-backbone model)
    return model


def load_weights(model: nn.Module, path: str, trust: bool = False) -> None:
    """Read ``path`` once, check it matches ``model``'s architecture, load it. ``trust``: allow
    a trusted legacy file (see :func:`seg_sparse.compat.legacy_checkpoints_trusted`)."""
    from seg_sparse.compat import legacy_checkpoints_trusted

    with legacy_checkpoints_trusted(trust):
        state = checkpoint_state_dict(path)
    check_state_dict_matches(model, state, path)
    model.load_state_dict(state)
