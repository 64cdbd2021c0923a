"""Check the values of well-known config keys before anything is built.

A wrong value (``train_cfg.max_iters=abc``, ``model.backbone.sampler=foo``,
``grid_interval=-3``, a negative learning rate ...) would otherwise surface deep inside
mmengine's builders as a long traceback that does not name the key. :func:`check_config_values`
names the key, the value and what is expected, in one line. The sampling-specific rules are the
ones the sampling code itself enforces (sampler names, :func:`check_grid_interval`,
:class:`~seg_sparse.sampling.SamplingOptions`), applied here early and with the key attached.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from seg_sparse.errors import ConfigValueError


def _positive_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return None if ok else "must be a positive integer"


def _non_negative_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else "must be an integer >= 0"


def _non_negative_number(value: Any) -> str | None:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and value >= 0)
    return None if ok else "must be a finite number >= 0"


def _positive_number(value: Any) -> str | None:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and value > 0)
    return None if ok else "must be a finite number > 0"


def _sampling_option(name: str) -> Callable[[Any], str | None]:
    """The sampling code's own rule for option ``name`` (:class:`SamplingOptions`)."""
    from seg_sparse.sampling.options import option_problem

    return lambda value: option_problem(name, value)


_SAMPLING_PLACES = ("model.backbone", "model.decode_head.sampling")
_LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
_HEADS = ("decode_head", "auxiliary_head")
#: key (lists are searched element by element) -> check returning what is wrong, or None.
CHECKS: tuple[tuple[str, Callable[[Any], str | None]], ...] = (
    ("train_cfg.max_iters", _positive_int),
    ("train_cfg.max_epochs", _positive_int),
    ("train_cfg.val_interval", _positive_int),
    *((f"{loader}.batch_size", _positive_int) for loader in _LOADERS),
    *((f"{loader}.num_workers", _non_negative_int) for loader in _LOADERS),
    ("optim_wrapper.optimizer.lr", _non_negative_number),
    ("optim_wrapper.optimizer.momentum", _non_negative_number),
    ("optim_wrapper.optimizer.weight_decay", _non_negative_number),
    ("model.sparse_loss_weight", _non_negative_number),
    *((f"model.{head}.num_classes", _positive_int) for head in _HEADS),
    *((f"model.{head}.loss_decode.loss_weight", _non_negative_number) for head in _HEADS),
    *((f"{place}.{name}", _sampling_option(name)) for place in _SAMPLING_PLACES
      for name in ("sampler", "grid_interval", "interp_window", "t0", "t_final", "max_iters",
                   "execution")),
    ("model.decode_head.sampling.loss_weight", _non_negative_number),
    ("env_cfg.dist_cfg.timeout", _positive_number),
)


def check_config_values(cfg: Any) -> None:
    """Raise :class:`ConfigValueError` for the first key of :data:`CHECKS` with a bad value."""
    cfg = getattr(cfg, "_cfg_dict", cfg)  # an mmengine Config wraps its ConfigDict
    for key, check in CHECKS:
        for path, value in _find(cfg, key.split(".")):
            problem = check(value)
            if problem:
                raise ConfigValueError(f"config value {path}={value!r} {problem}")
    _check_temperature(cfg)


def _check_temperature(cfg: Mapping) -> None:
    """The schedule decays: t_final must not exceed t0 (:class:`SamplingOptions`' rule)."""
    model = cfg.get("model") or {}
    head = model.get("decode_head") if isinstance(model, Mapping) else None
    places = {"model.backbone": model.get("backbone") if isinstance(model, Mapping) else None,
              "model.decode_head.sampling":
                  head.get("sampling") if isinstance(head, Mapping) else None}
    from seg_sparse.sampling import SamplingOptions

    for where, node in places.items():
        if not isinstance(node, Mapping) or "t_final" not in node or "t0" not in node:
            continue
        try:
            SamplingOptions(t0=node["t0"], t_final=node["t_final"])
        except (TypeError, ValueError) as err:
            raise ConfigValueError(f"config values {where}.t0={node['t0']!r}, "
                                   f"t_final={node['t_final']!r}: {err}") from None


def _find(node: Any, parts: list[str], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every place ``parts`` leads to; lists fan out by index."""
    if isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            yield from _find(item, parts, f"{prefix}.{i}" if prefix else str(i))
        return
    if not parts or not isinstance(node, Mapping) or parts[0] not in node:
        return
    path = f"{prefix}.{parts[0]}" if prefix else parts[0]
    if len(parts) == 1:
        yield path, node[parts[0]]
    else:
        yield from _find(node[parts[0]], parts[1:], path)
