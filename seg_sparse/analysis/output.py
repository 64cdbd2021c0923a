"""Writing experiment results: JSON files and plain-text tables (one convention for all)."""

from __future__ import annotations

import json
import math
import os
import os.path as osp
from collections.abc import Sequence
from typing import Any

from prettytable import PrettyTable


def write_json(out_dir: str, name: str, data: Any) -> str:
    """Write ``data`` to ``out_dir/name`` (created if needed); non-finite floats become null."""
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, name)
    with open(path, "w") as f:
        json.dump(_finite(data), f, indent=2)
    return path


def write_text(out_dir: str, name: str, text: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, name)
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\n")
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
