"""Reading a config the one way the CLI, the analysis commands and the demo all use.

:func:`load_config` reads the file (:mod:`.config_file`: errors named by file and line; the
file's own top-level variables overridable), merges checked ``--cfg-options``
(:mod:`.config_options`), points the dataloaders at a data root (:func:`set_data_root`) and
checks the values of well-known keys (:mod:`.config_values`), so every entry point refuses the
same mistakes with the same one-line errors.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Mapping, Sequence
from typing import Any

from mmengine.config import Config

from .config_file import ConfigError, read_config_file
from .config_options import merge_checked_options, split_variable_overrides
from .config_values import check_config_values

DATALOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")

__all__ = ["DATALOADERS", "ConfigError", "load_config", "set_data_root"]


def load_config(path: str, cfg_options: Mapping[str, Any] | None = None,
                data_root: str | None = None) -> Config:
    """The config at ``path`` with checked ``cfg_options`` merged, every dataloader pointed at
    ``data_root`` (when given) and its values checked.

    Options naming a top-level variable assigned in the file itself (``max_iters=5``) re-read
    the file with that value, so every key computed from it follows."""
    variables, options = split_variable_overrides(path, cfg_options)
    cfg = read_config_file(path, variables)
    merge_checked_options(cfg, options)
    if data_root:
        set_data_root(cfg, data_root)
    check_config_values(cfg)
    return cfg


def set_data_root(cfg: Config, data_root: str, loaders: Sequence[str] = DATALOADERS) -> None:
    """Point the dataset of each of ``loaders`` that the config has at ``data_root``.

    A python config copies its top-level ``data_root`` into the datasets when it is parsed, so
    the datasets are what must change (``--cfg-options data_root=...`` would change nothing).
    """
    from seg_sparse.apis.task import point_annotation_files

    if not osp.isdir(data_root):
        raise ConfigError(f"--data-root '{data_root}' is not a directory")
    for loader in loaders:
        if cfg.get(loader) is not None:
            cfg[loader].dataset.data_root = str(data_root)
    point_annotation_files(cfg, str(data_root), loaders)
