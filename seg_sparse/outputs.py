"""Writing experiment results: JSON files and plain-text tables (one convention for all),
replaced atomically so an interrupted command never leaves half a file; metric keys as the
results name them."""

from __future__ import annotations

import json
import math
import os.path as osp
from collections.abc import Mapping, Sequence
from typing import Any

from prettytable import PrettyTable

from seg_sparse.fileio import atomic_write_text


def write_json(out_dir: str, name: str, data: Any) -> str:
    """Write ``data`` to ``out_dir/name`` atomically (folder created if needed); non-finite
    floats become null."""
    path = osp.join(out_dir, name)
    atomic_write_text(path, json.dumps(_finite(data), indent=2))
    return path


def write_text(out_dir: str, name: str, text: str) -> str:
    path = osp.join(out_dir, name)
    atomic_write_text(path, text.rstrip("\n") + "\n")
    return path


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
    """A PrettyTable with numbers right-aligned and floats rounded to ``digits``."""
    t = PrettyTable()
    t.field_names = list(header)
    t.align = "r"
    t.align[header[0]] = "l"
    for row in rows:
        t.add_row([f"{v:.{digits}f}" if isinstance(v, float) else v for v in row])
    return t.get_string()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def unprefixed(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metric keys without their evaluator prefix (``coco/bbox_mAP`` -> ``bbox_mAP``)."""
    return {key.rsplit("/", 1)[-1]: value for key, value in metrics.items()}
