"""A model from a config with a checkpoint loaded, refusing a checkpoint that does not fit.

mmengine loads test checkpoints with ``strict=False`` and only *warns* about missing or
unexpected keys, so a checkpoint of another architecture silently evaluates a partly random
model. :func:`check_checkpoint_matches` compares names and shapes first; :func:`load_weights`
reads a checkpoint once (weights-only, through mmengine's loader, any source), checks it and
loads it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import nn

from seg_sparse.errors import UserInputError

_WRAPPER_PREFIX = re.compile(r"^module\.")


class CheckpointMismatchError(UserInputError, ValueError):
    """The checkpoint's state_dict does not match the model built from the config."""


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
    """Raise :class:`CheckpointMismatchError` listing missing, unexpected and mismatched keys."""
    check_state_dict_matches(model, checkpoint_state_dict(path), path, max_listed)


def check_state_dict_matches(model: nn.Module, loaded: Mapping, path: str,
                             max_listed: int = 5) -> None:
    """:func:`check_checkpoint_matches` on an already loaded state dict (no second read)."""
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
