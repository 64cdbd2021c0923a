"""Timing and memory measurements that survive a noisy machine: alternated runs, medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch


def sync_device(device: torch.device) -> None:
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
            sync_device(device)
            start = time.perf_counter()
            fn()
            sync_device(device)
            if round_index >= warmup:
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


#: glibc's mallopt parameter for the mmap threshold, and the threshold's values here: small
#: while measuring memory, then glibc's own upper limit (its steady state for large tensors).
_M_MMAP_THRESHOLD = -3
_TRACKING_THRESHOLD = 64 * 1024
_STEADY_THRESHOLD = 32 * 1024 * 1024
_tracking = False


def _set_mmap_threshold(value: int) -> bool:
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, value))
    except (OSError, AttributeError):
        return False


@contextmanager
def freed_memory_tracked() -> Iterator[bool]:
    """Make glibc return freed tensors to the OS while inside, so that the resident set follows
    the live tensors (yields False where this is not glibc).

    By default glibc raises its mmap threshold after the first large free and keeps freed
    tensors in its heap, where the peak resident set cannot see a new peak. A 64 KiB threshold
    puts every tensor of note in its own mapping -- and costs a page fault per allocation, so it
    is never on while timing: afterwards the threshold goes to glibc's upper limit (32 MiB),
    where large tensors are reused from the heap as in its default steady state.
    """
    global _tracking
    if _tracking:  # nested: the outer context restores
        yield True
        return
    _tracking = tracked = _set_mmap_threshold(_TRACKING_THRESHOLD)
    try:
        yield tracked
    finally:
        _tracking = False
        if tracked:
            _set_mmap_threshold(_STEADY_THRESHOLD)


def _proc_status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def peak_memory_bytes(fn: Callable[[], Any], device: torch.device | str = "cpu") -> int | None:
    """Peak memory while ``fn`` runs, above what was in use before (None where unknown).

    CUDA: the caching allocator's peak statistic. CPU: the process's peak resident set
    (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) while freed tensors leave it
    (:func:`freed_memory_tracked`; enter it before the measured code first runs, or memory
    freed earlier into glibc's heap is reused unseen).
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    with freed_memory_tracked() as tracked:
        if not tracked:
            return None
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current resident set
            base = _proc_status_bytes("VmRSS")
        except OSError:
            return None
        fn()
        return max(0, _proc_status_bytes("VmHWM") - base)
