"""Reading a config the one way the CLI, the analysis commands and the demo all use.

:func:`load_config` reads the file, merges checked ``--cfg-options``
(:mod:`.config_options`), points the dataloaders at a data root (:func:`set_data_root`) and
checks the values of well-known keys (:mod:`.config_values`), so every entry point refuses the
same mistakes with the same one-line errors.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Mapping, Sequence
from typing import Any

from mmengine.config import Config

from seg_sparse.errors import UserInputError

from .config_options import merge_checked_options
from .config_values import check_config_values

DATALOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


class ConfigError(UserInputError, ValueError):
    """A config file or option that cannot be used as given (missing file, data root ...)."""


def load_config(path: str, cfg_options: Mapping[str, Any] | None = None,
                data_root: str | None = None) -> Config:
    """The config at ``path`` with checked ``cfg_options`` merged, every dataloader pointed at
    ``data_root`` (when given) and its values checked."""
    if not osp.isfile(path):
        raise ConfigError(f"config file '{path}' does not exist")
    cfg = Config.fromfile(path)
    merge_checked_options(cfg, cfg_options)
    if data_root:
        set_data_root(cfg, data_root)
    check_config_values(cfg)
    return cfg


def set_data_root(cfg: Config, data_root: str, loaders: Sequence[str] = DATALOADERS) -> None:
    """Point the dataset of each of ``loaders`` that the config has at ``data_root``.

    A python config copies its top-level ``data_root`` into the datasets when it is parsed, so
    the datasets are what must change (``--cfg-options data_root=...`` would change nothing).
    """
    from seg_sparse.tasks import point_annotation_files

    if not osp.isdir(data_root):
        raise ConfigError(f"--data-root '{data_root}' is not a directory")
    for loader in loaders:
        if cfg.get(loader) is not None:
            cfg[loader].dataset.data_root = str(data_root)
    point_annotation_files(cfg, str(data_root), loaders)
