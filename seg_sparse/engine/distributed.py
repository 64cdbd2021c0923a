"""Multi-process training on CPU (gloo), and naming the rank that stopped responding.

mmengine's own distributed setup calls ``torch.cuda.set_device`` (fails without a GPU) and
wraps the model with ``device_ids=[LOCAL_RANK]`` (refused by DDP for CPU modules), so on CPU
:func:`setup_cpu_distributed` initialises the gloo process group itself, with a
:data:`CPU_DIST_TIMEOUT_S` timeout, and selects the CPU-capable DDP wrapper. ``seg-sparse
train`` and ``python -m seg_sparse.mmdet_tools train`` both use it.

A rank that hangs (or is stopped, or dies without its process group noticing) makes the others
wait in their next collective until the timeout, and gloo's error then says only
``Timed out waiting 600000ms for recv operation``. :func:`start_heartbeat` makes every rank
count a key of the process group's store up once a second from a daemon thread;
:func:`reported_unresponsive_ranks` turns a failure of the training into
:class:`RankUnresponsiveError` naming the ranks whose count stopped moving.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from seg_sparse.errors import RunFailure, UserInputError

#: Seconds a CPU (gloo) rank waits for the others in a collective before it fails, instead of
#: gloo's 30 minutes: a crashed or hung rank ends the run soon. Long waits are legitimate only
#: when one rank works alone (e.g. the official Cityscapes evaluation on rank 0); raise it with
#: --cfg-options +env_cfg.dist_cfg.timeout=SECONDS.
CPU_DIST_TIMEOUT_S = 600
#: Seconds between two heartbeats of a rank, and how long a diagnosis watches them.
HEARTBEAT_INTERVAL_S = 1.0
HEARTBEAT_WATCH_S = 3.0
_HEARTBEAT_KEY = "seg_sparse/heartbeat/{}"
_heartbeat_started = False


class LauncherError(UserInputError, RuntimeError):
    """A launcher setting that cannot work on this machine."""


class RankUnresponsiveError(RunFailure):
    """Ranks of a distributed run stopped responding; the others gave up waiting for them."""


def setup_cpu_distributed(cfg: Any) -> None:
    """Make ``launcher='pytorch'`` work on CPU: gloo with a :data:`CPU_DIST_TIMEOUT_S` default
    timeout, and a CPU-capable DDP wrapper (no-op with CUDA or without a launcher)."""
    import torch

    launcher = cfg.get("launcher", "none")
    if launcher == "none" or torch.cuda.is_available():
        return
    if launcher != "pytorch":
        raise LauncherError(
            f"--launcher {launcher} needs GPUs; on a CPU-only machine use torchrun with "
            "--launcher pytorch (gloo backend).")
    import torch.distributed as dist

    env_cfg = cfg.setdefault("env_cfg", {})
    dist_cfg = dict(env_cfg.get("dist_cfg") or {})
    dist_cfg["backend"] = "gloo"
    dist_cfg.setdefault("timeout", CPU_DIST_TIMEOUT_S)
    env_cfg["dist_cfg"] = dist_cfg
    if "RANK" not in os.environ:
        raise LauncherError("--launcher pytorch expects to be started by torchrun "
                            "(RANK/WORLD_SIZE/MASTER_ADDR are not set)")
    if not dist.is_initialized():
        kwargs = {k: v for k, v in dist_cfg.items() if k != "backend"}
        kwargs["timeout"] = timedelta(seconds=kwargs["timeout"])
        dist.init_process_group(backend="gloo", **kwargs)
    if cfg.get("model_wrapper_cfg") is None:
        cfg.model_wrapper_cfg = dict(
            type="CPUCompatibleDistributedDataParallel",
            broadcast_buffers=False,
            find_unused_parameters=cfg.get("find_unused_parameters", False),
        )


def _store() -> Any:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    try:
        return dist.distributed_c10d._get_default_store()
    except (AttributeError, RuntimeError, ValueError):
        return None


def start_heartbeat() -> None:
    """Count this rank's heartbeat key up every :data:`HEARTBEAT_INTERVAL_S` seconds (once per
    process; no-op without a process group)."""
    global _heartbeat_started
    store = _store()
    if store is None or _heartbeat_started:
        return
    import torch.distributed as dist

    key = _HEARTBEAT_KEY.format(dist.get_rank())

    def beat() -> None:
        while True:
            try:
                store.add(key, 1)
            except Exception:  # noqa: BLE001 - the store is gone: the run is over
                return
            time.sleep(HEARTBEAT_INTERVAL_S)

    threading.Thread(target=beat, name="seg_sparse-heartbeat", daemon=True).start()
    _heartbeat_started = True


def unresponsive_ranks(watch_s: float = HEARTBEAT_WATCH_S) -> list[int]:
    """The other ranks whose heartbeat did not move during ``watch_s`` seconds ([] without a
    process group or heartbeats)."""
    import torch.distributed as dist

    store = _store()
    if store is None:
        return []
    own, world = dist.get_rank(), dist.get_world_size()
    others = [r for r in range(world) if r != own]
    try:  # the run is failing anyway: do not wait the full timeout on an unresponsive store
        store.set_timeout(timedelta(seconds=HEARTBEAT_WATCH_S + 2))
    except (AttributeError, RuntimeError):
        pass
    try:
        before = {r: store.add(_HEARTBEAT_KEY.format(r), 0) for r in others}
        time.sleep(watch_s)
        after = {r: store.add(_HEARTBEAT_KEY.format(r), 0) for r in others}
    except Exception:  # noqa: BLE001 - the store itself is unreachable: nothing to tell
        return []
    return [r for r in others if after[r] == before[r]]


@contextmanager
def reported_unresponsive_ranks(timeout_s: float | None) -> Iterator[None]:
    """Run the block; if it fails while other ranks have stopped responding, raise
    :class:`RankUnresponsiveError` naming them (the original error is its cause)."""
    try:
        yield
    except Exception as err:
        ranks = unresponsive_ranks()
        if not ranks:
            raise
        import torch.distributed as dist

        names = ", ".join(map(str, ranks))
        waited = f" after the {timeout_s:g} s collective timeout" if timeout_s else ""
        raise RankUnresponsiveError(
            f"rank {names} of {dist.get_world_size()} stopped responding (no heartbeat for "
            f"{HEARTBEAT_WATCH_S:g} s: stopped, hung or dead), and rank {dist.get_rank()} gave "
            f"up waiting for it{waited}; the run is ended (under torchrun the remaining "
            f"processes are stopped too). {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}") from err


def close_process_group() -> None:
    """Tear down a torchrun process group before exit.

    Left to interpreter shutdown, gloo's worker threads are destroyed while still joinable and
    a rank can abort ("terminate called without an active exception") after a finished run.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def dist_timeout_s(cfg: Any) -> float | None:
    """The process group timeout the config asks for (seconds), if any."""
    timeout = ((cfg.get("env_cfg") or {}).get("dist_cfg") or {}).get("timeout")
    return float(timeout) if timeout is not None else None
