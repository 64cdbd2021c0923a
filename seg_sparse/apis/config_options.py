"""Checked ``--cfg-options`` merging: a mistyped key is an error, not a silent no-op.

mmengine's ``Config.merge_from_dict`` creates any key it is given, so ``max_iter=2`` or
``model.decode_head.num_class=19`` are accepted and ignored. Before merging, every dotted key
is walked through the config:

* an existing key (or list index) is always accepted;
* a new key is accepted when its parent dict has a ``type`` whose constructor (along its MRO)
  takes an argument of that name, e.g. ``model.backbone.frozen_stages=1`` or
  ``model.backbone.init_cfg.checkpoint=PATH``; everything below such a new key is free-form;
* a new top-level key is accepted when mmengine's Runner reads it (``randomness``, ``sync_bn``,
  ``model_wrapper_cfg`` ...);
* anything else is refused with did-you-mean suggestions (difflib). Prefix a key with ``+``
  (``+env_cfg.dist_cfg.timeout=1800``) to add it deliberately.

Top-level *variables* of a python config (``data_root``, ``crop_size``, ``max_iters`` ...) have
already been copied into the dicts that use them when the file is parsed, so merging a new value
changes nothing. A whole variable (``max_iters=5``, ``data_root=DIR``) is instead overridden by
re-reading the config with the new value (:func:`split_variable_overrides`,
:mod:`.config_file`); a key inside a variable (``crop_size.0``) is refused, naming the keys that
hold the same value.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

from mmengine.config import Config

from seg_sparse.errors import UserInputError

from .config_file import chain_variables, variable_source

ADD_PREFIX = "+"

# Top-level keys mmengine's Runner (``Runner.from_cfg`` / ``__init__``) or its helpers read.
_RUNNER_KEYS = frozenset(
    {
        "model", "work_dir", "train_dataloader", "val_dataloader", "test_dataloader",
        "train_cfg", "val_cfg", "test_cfg", "auto_scale_lr", "optim_wrapper", "param_scheduler",
        "val_evaluator", "test_evaluator", "default_hooks", "custom_hooks", "data_preprocessor",
        "load_from", "resume", "launcher", "env_cfg", "log_processor", "log_level", "visualizer",
        "default_scope", "randomness", "experiment_name", "find_unused_parameters", "sync_bn",
        "model_wrapper_cfg", "runner_type", "compile", "custom_imports", "tta_model",
        "tta_pipeline",
    }
)


class ConfigKeyError(UserInputError, KeyError):
    """A ``--cfg-options`` key that does not exist in the config and cannot be added."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def split_variable_overrides(
    path: str, options: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(variables, rest): the options that replace a top-level variable assigned in the config
    file ``path`` or a base file (a plain name, not a key the Runner reads), and the others."""
    options = dict(options or {})
    plain = [k for k in options if "." not in k and not k.startswith(ADD_PREFIX)
             and k not in _RUNNER_KEYS]
    if not plain:
        return {}, options
    from seg_sparse.fileio import check_input_file

    check_input_file(path, "config file")
    assigned = chain_variables(path)
    variables = {k: options.pop(k) for k in plain if k in assigned}
    return variables, options


def merge_checked_options(cfg: Config, options: Mapping[str, Any] | None) -> None:
    """Validate every key of ``options`` against ``cfg`` and merge them (all or nothing)."""
    if not options:
        return
    cleaned: dict[str, Any] = {}
    for raw_key, value in options.items():
        if raw_key.startswith(ADD_PREFIX):
            key = raw_key[len(ADD_PREFIX):]
        else:
            key = raw_key
            check_key(cfg, key)
        cleaned[key] = value
    cfg.merge_from_dict(cleaned)


def check_key(cfg: Config, key: str) -> None:
    """Raise :class:`ConfigKeyError` if overriding ``key`` would be silently ineffective."""
    parts = key.split(".")
    top = parts[0]
    if not all(parts):
        raise ConfigKeyError(f"--cfg-options '{key}': empty key name; write KEY=VALUE with a "
                             "dotted key such as train_cfg.max_iters")
    if top in cfg and top not in _RUNNER_KEYS:
        raise ConfigKeyError(_variable_message(cfg, key, parts))
    node: Any = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    for depth, part in enumerate(parts):
        here = ".".join(parts[:depth])
        if isinstance(node, (list, tuple)):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigKeyError(
                    f"--cfg-options '{key}': '{here}' is a list of {len(node)} items; "
                    f"use an index 0..{len(node) - 1} instead of '{part}'."
                )
            node = node[int(part)]
            continue
        if not isinstance(node, Mapping):
            raise ConfigKeyError(
                f"--cfg-options '{key}': '{here}' is a {type(node).__name__} "
                f"({node!r}), not a dict, so it has no key '{part}'."
            )
        if part in node:
            node = node[part]
            continue
        if _may_add(node, part, is_top=depth == 0):
            return  # a new, accepted key: below it the value is free-form
        raise ConfigKeyError(_unknown_key_message(cfg, key, parts, depth, node))


def _variable_message(cfg: Config, key: str, parts: list[str]) -> str:
    top = parts[0]
    holders = [".".join([p, *parts[1:]])
               for p in _paths_with_value(cfg, cfg[top]) if p != top][:6]
    hint = f" Override the keys that use it instead, e.g. {', '.join(holders)}." if holders else ""
    source = variable_source(cfg.filename, top) if cfg.filename else None
    if source is not None and len(parts) > 1:
        why = (f"is a variable of the config (set in '{source}'): '{top}=VALUE' replaces it "
               "whole (the config is re-read with it), but a key inside it cannot be set")
    else:
        why = ("is a variable of the config whose value was already copied where it is used "
               "when the file was parsed, so merging it would change nothing (load_config and "
               "the seg-sparse commands re-read the config with a new value instead)")
    return f"--cfg-options '{key}': '{top}' {why}.{hint}"


def _may_add(parent: Mapping, key: str, is_top: bool) -> bool:
    if is_top:
        return key in _RUNNER_KEYS
    type_ = parent.get("type")
    return type_ is not None and key in constructor_arguments(type_)


def constructor_arguments(type_: Any) -> set[str]:
    """Names accepted by the constructor of a registered ``type`` (union over its MRO)."""
    names: set[str] = set()
    for target in _resolve_type(type_):
        owners = target.__mro__ if inspect.isclass(target) else (target,)
        for owner in owners:
            init = owner.__dict__.get("__init__") if inspect.isclass(owner) else owner
            if init is None or owner is object:
                continue
            try:
                params = inspect.signature(init).parameters.values()
            except (TypeError, ValueError):
                continue
            names.update(
                p.name for p in params
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"
            )
    return names


def _resolve_type(type_: Any) -> list[Any]:
    if not isinstance(type_, str):
        return [type_]
    from mmdet import registry as mmdet_registry
    from mmengine.registry import Registry
    from mmseg import registry as mmseg_registry

    found = []
    registries = [*vars(mmseg_registry).values(), *vars(mmdet_registry).values()]
    for reg in registries:
        if isinstance(reg, Registry):
            try:
                target = reg.get(type_)
            except (KeyError, ImportError, TypeError):
                target = None
            if target is not None and target not in found:
                found.append(target)
    return found


def _unknown_key_message(cfg: Config, key: str, parts: list[str], depth: int,
                         parent: Mapping) -> str:
    prefix = ".".join(parts[:depth])
    siblings = [str(k) for k in parent if depth or k in _RUNNER_KEYS]
    type_ = parent.get("type")
    if depth and type_ is not None:
        siblings += sorted(constructor_arguments(type_))
    close = difflib.get_close_matches(parts[depth], list(dict.fromkeys(siblings)), n=3,
                                      cutoff=0.6)
    suggestions = [".".join([*parts[:depth], c, *parts[depth + 1:]]) for c in close]
    if not suggestions:  # look everywhere, e.g. 'max_iter' -> 'train_cfg.max_iters'
        live = [p for p in _all_paths(cfg._cfg_dict) if p.split(".")[0] in _RUNNER_KEYS]
        suggestions = difflib.get_close_matches(key, live, n=3, cutoff=0.6)
        if not suggestions:
            by_leaf: dict[str, list[str]] = {}
            for path in live:
                by_leaf.setdefault(path.rsplit(".", 1)[-1], []).append(path)
            for leaf in difflib.get_close_matches(parts[-1], list(by_leaf), n=2, cutoff=0.75):
                suggestions += by_leaf[leaf][:3]
    where = f"'{prefix}'" if prefix else "the config"
    msg = f"--cfg-options '{key}': {where} has no key '{parts[depth]}'"
    if type_ is not None:
        msg += f" (and {type_} takes no such argument)"
    msg += "."
    if suggestions:
        msg += " Did you mean: " + ", ".join(suggestions) + "?"
    return msg + f" Prefix the key with '{ADD_PREFIX}' to add a new key on purpose."


def _all_paths(node: Any, prefix: str = "") -> Iterator[str]:
    for path, _ in _all_items(node, prefix):
        yield path


def _all_items(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every key and list item below ``node``, depth first (keys that
    hold a dot themselves, e.g. paramwise_cfg's ``'.mask1.'``, are walked, not re-split)."""
    items: Any
    if isinstance(node, Mapping):
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return
    for k, v in items:
        path = f"{prefix}.{k}" if prefix else str(k)
        yield path, v
        yield from _all_items(v, path)


def _paths_with_value(cfg: Config, value: Any) -> list[str]:
    return [path for path, node in _all_items(cfg._cfg_dict) if _same_value(node, value)]


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - values that cannot be compared are not the same
        return False
