"""Speed / accuracy curve: GFLOPs against mIoU (or mAP) from several test results.

Reads the JSON files evaluations write -- ``metrics.json`` of ``seg-sparse test`` (keys under
``"metrics"``), mmengine's per-run test JSON (flat keys) and ``flops.json`` of ``seg-sparse
flops`` -- and groups the points by method family: ours (stochastic sampling), Determ
Gumbel-Softmax, ReLU gate, uniform sampling (dense models at several input sizes). The family
comes from the ``sampler`` the toolkit records in every result it writes, else from hints in
the config's file name; a result file is data, so the config it names is never read or run.
"""

from __future__ import annotations

import json
import math
import os.path as osp
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from seg_sparse.errors import UserInputError
from seg_sparse.outputs import table, unprefixed

#: Test-time sampler of a config -> method family of the paper's plots.
FAMILY_OF_SAMPLER = {
    "stochastic": "ours",
    "deterministic": "Determ Gumbel-Softmax",
    "relu": "ReLU",
    "dense": "uniform sampling",
}
#: Config-name hints, for results that do not record their sampler (e.g. mmseg's tools).
FAMILY_OF_NAME = (("determ", "deterministic"), ("relu", "relu"), ("uniform", "dense"),
                  ("sparse", "stochastic"))
ACCURACY_KEYS = ("mIoU", "mAP", "coco/bbox_mAP", "bbox_mAP", "pascal_voc/mAP")
GFLOPS_KINDS = ("backbone", "total")


class ResultFileError(UserInputError, ValueError):
    """A result JSON that cannot be read or lacks what the curve needs."""


@dataclass
class CurvePoint:
    family: str
    label: str
    gflops: float
    accuracy: float
    source: str

    def as_plot_point(self) -> dict[str, Any]:
        return {"method_family": self.family, "label": self.label, "gflops": self.gflops,
                "metric": self.accuracy}


def _metrics(data: Mapping[str, Any]) -> Mapping[str, Any]:
    nested = data.get("metrics")
    return nested if isinstance(nested, Mapping) else data


def sampler_of_config(cfg: Any) -> str | None:
    """``model.backbone.sampler`` of a config, the value results record (None if absent)."""
    backbone = (cfg.get("model") or {}).get("backbone") or {}
    sampler = backbone.get("sampler") if isinstance(backbone, Mapping) else None
    return sampler if isinstance(sampler, str) else None


def _number(path: str, key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ResultFileError(f"result '{path}': '{key}' is {value!r}, not a number") from None
    if not math.isfinite(number):
        raise ResultFileError(f"result '{path}': '{key}' is {value!r}, not a finite number")
    return number


def read_accuracy(path: str, data: Mapping[str, Any], key: str | None) -> tuple[str, float]:
    metrics = _metrics(data)
    keys = [key] if key else list(ACCURACY_KEYS)
    for k in keys:
        if metrics.get(k) is not None:
            return k, _number(path, k, metrics[k])
    raise ResultFileError(f"result '{path}' has no accuracy key ({' / '.join(keys)}); "
                          f"its keys: {sorted(metrics)}")


def read_gflops(path: str, data: Mapping[str, Any], kind: str = "backbone") -> float:
    """Executed GFLOPs (with measured densities) if present, else the dense count."""
    if kind not in GFLOPS_KINDS:
        raise ValueError(f"GFLOPs kind must be one of {GFLOPS_KINDS}, got {kind!r}")
    metrics = _metrics(data)
    # mmdet metrics prefix their keys ("coco/gflops_backbone_sparse")
    metrics = {**unprefixed(metrics), **metrics}
    for key in (f"gflops_{kind}_sparse", f"gflops_{kind}_dense", f"gflops_{kind}"):
        if metrics.get(key) is not None:
            return _number(path, key, metrics[key])
    for section in ("sparse", "dense"):  # flops.json of `seg-sparse flops`
        if isinstance(data.get(section), Mapping) and data[section].get(kind) is not None:
            return _number(path, f"{section}.{kind}", data[section][kind])
    raise ResultFileError(
        f"result '{path}' has no GFLOPs (gflops_{kind}_sparse / gflops_{kind}_dense); "
        "evaluate with the sparse metric (test_evaluator type 'SparseIoUMetric' or "
        "'SparseCocoMetric', and "
        "custom_hooks SparseFlopsHook) or use `seg-sparse flops --checkpoint`")


def infer_family(data: Mapping[str, Any]) -> str | None:
    """Family from the ``sampler`` a result records, else from hints in its config's file
    name (the file itself is never read)."""
    sampler = data.get("sampler")
    if sampler not in FAMILY_OF_SAMPLER:
        config = data.get("config")
        name = osp.basename(config).lower() if isinstance(config, str) else ""
        sampler = next((s for hint, s in FAMILY_OF_NAME if hint in name), None)
    return FAMILY_OF_SAMPLER.get(sampler) if sampler else None


def default_label(path: str, config: str | None) -> str:
    """Setting tags of the config name (w0.1, short side 512, nogrid, t0.005), else the
    result's folder name."""
    name = osp.splitext(osp.basename(config))[0] if config else ""
    tags = []
    if m := re.search(r"uniform(\d+)", name):
        tags.append(f"short side {m.group(1)}")
    tags += re.findall(r"_(w[\d.]+|nogrid|t[\d.]+)(?=_|$)", name)
    if tags:
        return " ".join(tags)
    return osp.basename(osp.dirname(osp.abspath(path))) or osp.basename(path)


def load_curve_points(
    paths: Sequence[str],
    families: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    gflops: str = "backbone",
    accuracy_key: str | None = None,
) -> tuple[list[CurvePoint], str]:
    """One point per result file, and the accuracy key used (the same for all files).

    ``families`` / ``labels``: one per file, or one family for all; inferred when omitted.
    """
    if not paths:
        raise ResultFileError("no result files given: pass at least one RESULT.json")
    for what, values in (("--family", families), ("--labels", labels)):
        allowed = (1, len(paths)) if what == "--family" else (len(paths),)
        if values and len(values) not in allowed:
            raise ResultFileError(f"{what} needs {' or '.join(map(str, allowed))} value(s) for "
                                  f"{len(paths)} result files, got {len(values)}")
    points, used_keys = [], set()
    for i, path in enumerate(paths):
        try:
            with open(path) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise ResultFileError(f"result file '{path}' does not exist") from None
        except IsADirectoryError:
            raise ResultFileError(f"result file '{path}' is a directory, not a file") from None
        except (OSError, json.JSONDecodeError) as err:
            raise ResultFileError(f"result file '{path}' is not readable JSON: {err}") from None
        if not isinstance(data, Mapping):
            raise ResultFileError(f"result file '{path}' holds a {type(data).__name__}, "
                                  "not a JSON object of metrics")
        key, value = read_accuracy(path, data, accuracy_key)
        used_keys.add(key)
        config = data.get("config") if isinstance(data.get("config"), str) else None
        family = (families[0] if len(families) == 1 else families[i]) if families else \
            infer_family(data)
        if family is None:
            raise ResultFileError(f"cannot tell the method family of '{path}' (no recorded "
                                  f"sampler, config {config!r}); pass --family")
        label = labels[i] if labels else default_label(path, config)
        points.append(CurvePoint(family, label, read_gflops(path, data, gflops), value, path))
    if len(used_keys) > 1:
        raise ResultFileError(f"the results report different accuracy keys {sorted(used_keys)};"
                              " choose one with --metric")
    return points, used_keys.pop()


def format_curve_table(points: Sequence[CurvePoint], accuracy_key: str, gflops: str) -> str:
    rows = [[p.family, p.label, p.gflops, f"{p.accuracy:.2f}", p.source]
            for p in sorted(points, key=lambda p: (p.family, p.gflops))]
    return table(["family", "point", f"GFLOPs ({gflops})", accuracy_key, "result file"], rows)
