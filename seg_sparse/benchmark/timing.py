"""Timing and memory measurements that survive a noisy machine: alternated runs, medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alternated_medians(
    fns: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 1,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Median milliseconds of each function, run in turn (a, b, c, a, b, c, ...).

    Alternating spreads a background load over all candidates alike; ``warmup`` rounds
    (caches, allocator, lazy weight folding) are excluded.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    device = torch.device(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_index in range(warmup + repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            if round_index >= warmup:
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


#: glibc's mallopt parameter for the mmap threshold.
_M_MMAP_THRESHOLD = -3


def track_freed_memory() -> bool:
    """Make glibc return freed tensors to the OS, so the resident set follows live tensors.

    By default glibc raises its mmap threshold after the first large free and then keeps
    freed tensors in its heap, where the peak resident set can no longer see a new peak.
    A fixed 64 KiB threshold (set once per process, here) keeps every tensor of note in its
    own mapping. Returns False where this is not glibc.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 64 * 1024))
    except (OSError, AttributeError):
        return False


def _proc_status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def peak_memory_bytes(fn: Callable[[], Any], device: torch.device | str = "cpu") -> int | None:
    """Peak memory while ``fn`` runs, above what was in use before (None where unknown).

    CUDA: the caching allocator's peak statistic. CPU: the process's peak resident set
    (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) -- call
    :func:`track_freed_memory` once first, so that freed tensors leave the resident set.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident set
        base = _proc_status_bytes("VmRSS")
    except OSError:
        return None
    fn()
    return max(0, _proc_status_bytes("VmHWM") - base)
