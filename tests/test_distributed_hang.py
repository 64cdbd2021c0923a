"""A rank that stops responding in CPU multi-process training: the others end within the
process group timeout and name it (seg_sparse.engine.distributed)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from cli_support import REPO, tiny_config

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not torch.distributed.is_available(),
                                                   reason="no torch.distributed")]

TIMEOUT_S = 5  # the process group timeout of the test run (default 600)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stopped_rank_ends_the_run_within_the_timeout_and_is_named(synthcity, tmp_path):
    config = tiny_config(tmp_path, iters=1000, interval=1000)
    port = _free_port()
    ranks, logs = [], []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
                   PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore")
        log = open(tmp_path / f"rank{rank}.log", "w")  # noqa: SIM115
        logs.append(log)
        ranks.append(subprocess.Popen(
            [sys.executable, "-m", "seg_sparse.cli.main", "train", config, "--launcher",
             "pytorch", "--work-dir", str(tmp_path / "work"), "--data-root", str(synthcity),
             "--cfg-options", f"+env_cfg.dist_cfg.timeout={TIMEOUT_S}"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path))
    try:
        deadline = time.monotonic() + 240
        while not re.search(r"Iter\(train\) \[\s*2/1000\]", (tmp_path / "rank0.log").read_text()):
            assert all(p.poll() is None for p in ranks), (tmp_path / "rank0.log").read_text()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.5)
        ranks[1].send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        rc = ranks[0].wait(timeout=TIMEOUT_S + 60)
        ended_after = time.monotonic() - stopped
    finally:
        for process in ranks:
            process.kill()
            process.wait()
        for log in logs:
            log.close()
    output = (tmp_path / "rank0.log").read_text().strip().splitlines()
    assert rc == 1
    # the timeout, up to one iteration, the 3 s heartbeat watch, and process exit
    assert ended_after < TIMEOUT_S + 20
    assert output[-1].startswith("seg-sparse train: error: rank 1 of 2 stopped responding (no "
                                 "heartbeat for 3 s: stopped, hung or dead), and rank 0 gave "
                                 f"up waiting for it after the {TIMEOUT_S} s collective timeout")
