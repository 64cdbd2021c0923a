"""Tables of ``seg-sparse bench`` and the line that says what machine measured them."""

from __future__ import annotations

import platform
from collections.abc import Sequence

import torch

from seg_sparse.outputs import table

from .inference import InferenceRow
from .training import TrainingRow


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line(device: str) -> str:
    """Device, CPU model, core count, threads and torch version, for the record."""
    import os

    where = _cpu_name()
    if device.startswith("cuda"):
        where = f"{torch.cuda.get_device_name(torch.device(device))} (host: {where})"
    wait = os.environ.get("OMP_WAIT_POLICY", "default")
    return (f"device: {device} | {where} | {os.cpu_count()} cores | "
            f"threads: {torch.get_num_threads()} | OMP_WAIT_POLICY: {wait} | "
            f"torch {torch.__version__}")


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def format_inference(rows: Sequence[InferenceRow]) -> str:
    crossover = any(r.gather_ms is not None for r in rows)
    header = ["input", "part", "density", "mean d", "dense ms", "masked ms", "sparse ms",
              *(["gather ms", "full-map ms"] if crossover else []), "speedup", "FLOPs ratio",
              "realization", "dense MB", "sparse MB"]
    body = []
    for r in rows:
        gather = [f"{v:.1f}" if v is not None else "-" for v in (r.gather_ms, r.fullmap_ms)] \
            if crossover else []
        body.append([
            r.input, r.part, r.density if isinstance(r.density, str) else f"{r.density:.2f}",
            f"{r.mean_density:.3f}", f"{r.dense_ms:.1f}", f"{r.masked_ms:.1f}",
            f"{r.sparse_ms:.1f}", *gather, f"{r.speedup:.2f}x",
            "-" if r.flops_ratio is None else f"{r.flops_ratio:.3f}",
            "-" if r.realization is None else f"{r.realization:.2f}",
            _mb(r.dense_peak_mb), _mb(r.sparse_peak_mb)])
    return table(header, body)


def format_training(rows: Sequence[TrainingRow]) -> str:
    header = ["model", "crop", "batch", "dense ms", "sparse ms", "time ratio", "dense MB",
              "sparse MB", "memory ratio"]
    body = [[r.model, r.crop, r.batch, f"{r.dense_ms:.0f}", f"{r.sparse_ms:.0f}",
             f"{r.time_ratio:.2f}x", _mb(r.dense_peak_mb), _mb(r.sparse_peak_mb),
             "-" if r.memory_ratio is None else f"{r.memory_ratio:.2f}x"] for r in rows]
    return table(header, body)
