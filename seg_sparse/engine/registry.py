"""One registration for the toolkit's hooks in both frameworks it serves.

Segmentation configs build hooks from mmseg's ``HOOKS`` (``default_scope='mmseg'``), detection
configs from mmdet's (``'mmdet'``); the two registries are siblings under mmengine's root, so a
hook registered in one is invisible to the other. Every seg-sparse hook is registered in both,
and never in mmengine's root registry (nothing else changes for other mm projects).
"""

from __future__ import annotations

from mmdet.registry import HOOKS as DET_HOOKS
from mmseg.registry import HOOKS as SEG_HOOKS

HookType = type


def register_hook(cls: HookType) -> HookType:
    """Class decorator: register ``cls`` in mmseg's and mmdet's ``HOOKS``."""
    SEG_HOOKS.register_module(module=cls)
    DET_HOOKS.register_module(module=cls)
    return cls
