"""Every checkpoint source mmengine knows goes through the weights-only loader (issue 12.1).

A crafted checkpoint whose unpickling would create a marker folder is served over a loopback
HTTP server (127.0.0.1 only, every socket operation bounded by a timeout) and reached through
each scheme and each way the toolkit loads checkpoints; the marker must never appear.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import types
from pathlib import Path

import mmseg
import pytest
import torch
from cli_support import seg_sparse, unique_name
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader
from mmengine.runner import checkpoint as mmengine_checkpoint

from seg_sparse.compat import UnsafeCheckpointError, allow_legacy_checkpoints
from seg_sparse.compat.checkpoint_schemes import UnknownCheckpointSourceError, is_safe_loader

TIMEOUT_S = 20


class Payload:
    """Unpickling this calls ``os.makedirs(marker)``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.makedirs, (str(self.marker),)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(base URL of a loopback server over ``tmp_path/srv``, marker path); the malicious file
    is ``<base>/evil.pth``; torch hub's download cache lives in ``tmp_path``."""
    folder = tmp_path / "srv"
    folder.mkdir()
    marker = tmp_path / "PAYLOAD_RAN"
    torch.save({"state_dict": {"w": torch.ones(2)}, "x": Payload(marker)}, folder / "evil.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    socket.setdefaulttimeout(TIMEOUT_S)
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = TIMEOUT_S
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", marker
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT_S)
        socket.setdefaulttimeout(None)


def test_every_registered_scheme_has_a_weights_only_loader():
    assert CheckpointLoader._schemes
    for prefix, loader in CheckpointLoader._schemes.items():
        assert is_safe_loader(loader), prefix
        assert loader.__module__ == "seg_sparse.compat.checkpoint_schemes"


def test_scheme_registered_later_is_refused_not_trusted():
    called = []
    CheckpointLoader.register_scheme("latecomer://", lambda f, m=None: called.append(f))
    try:
        with pytest.raises(UnknownCheckpointSourceError, match="no weights-only loader"):
            CheckpointLoader.load_checkpoint("latecomer://weights.pth")
    finally:
        del CheckpointLoader._schemes["latecomer://"]
    assert called == []


def _zoo(monkeypatch, table_function: str, name: str, url: str) -> None:
    monkeypatch.setattr(mmengine_checkpoint, table_function, lambda: {name: url})


def _fake_pavi(monkeypatch, file: Path) -> None:
    class Model:
        name = file.name

        def download(self, path: str) -> None:
            Path(path).write_bytes(file.read_bytes())

    modelcloud = types.SimpleNamespace(get=lambda path: Model())
    monkeypatch.setitem(sys.modules, "pavi", types.SimpleNamespace(modelcloud=modelcloud))


def _fake_object_store(monkeypatch, file: Path) -> None:
    import mmengine.fileio

    store = types.SimpleNamespace(get=lambda path: file.read_bytes())
    monkeypatch.setattr(mmengine.fileio, "get_file_backend", lambda *a, **k: store)


@pytest.mark.parametrize("source", ["http", "torchvision", "modelzoo", "open-mmlab",
                                    "openmmlab", "mmcls", "pavi", "s3", "petrel"])
def test_malicious_checkpoint_is_refused_from_every_source(served, monkeypatch, source):
    base, marker = served
    url = f"{base}/evil.pth"
    evil = marker.parent / "srv" / "evil.pth"
    path = {
        "http": url,
        "torchvision": "torchvision://resnet50",
        "modelzoo": "modelzoo://resnet50",
        "open-mmlab": "open-mmlab://resnet50_v1c",
        "openmmlab": "openmmlab://resnet50_v1c",
        "mmcls": "mmcls://resnet50",
        "pavi": "pavi://project/evil.pth",
        "s3": "s3://bucket/evil.pth",
        "petrel": "cluster:petrel://bucket/evil.pth",
    }[source]
    if source in ("torchvision", "modelzoo"):
        _zoo(monkeypatch, "get_torchvision_models", "resnet50", url)
    elif source in ("open-mmlab", "openmmlab"):
        _zoo(monkeypatch, "get_external_models", "resnet50_v1c", url)
        monkeypatch.setattr(mmengine_checkpoint, "get_deprecated_model_names", dict)
    elif source == "mmcls":
        _zoo(monkeypatch, "get_mmcls_models", "resnet50", url)
    elif source == "pavi":
        _fake_pavi(monkeypatch, evil)
    elif source in ("s3", "petrel"):
        _fake_object_store(monkeypatch, evil)
    with pytest.raises(UnsafeCheckpointError, match=r"os\.makedirs|posix\.makedirs") as info:
        CheckpointLoader.load_checkpoint(path, map_location="cpu")
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_unknown_zoo_name_is_a_clear_error(served, monkeypatch):
    monkeypatch.setattr(mmengine_checkpoint, "get_torchvision_models", dict)
    with pytest.raises(UnknownCheckpointSourceError, match="'torchvision://nope' is not a known"):
        CheckpointLoader.load_checkpoint("torchvision://nope")


def test_trusted_legacy_checkpoint_over_http_loads_with_a_warning(served):
    base, marker = served
    legacy = marker.parent / "srv" / "legacy.pth"
    torch.save({"state_dict": {"w": torch.ones(2)},
                "message_hub": {"log_scalars": {"loss": HistoryBuffer([1.0], [1])}}}, legacy)
    with pytest.raises(UnsafeCheckpointError, match="builtins.getattr"):
        CheckpointLoader.load_checkpoint(f"{base}/legacy.pth")
    with pytest.warns(UserWarning, match="trusted"):
        allow_legacy_checkpoints()
    try:
        with pytest.warns(UserWarning, match="weights_only=False"):
            loaded = CheckpointLoader.load_checkpoint(f"{base}/legacy.pth")
    finally:
        allow_legacy_checkpoints(False)
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["test", "resume", "load_from", "init_cfg", "last_checkpoint"])
def test_cli_refuses_malicious_url(served, synthcity, tiny, tmp_path, capsys, how):
    base, marker = served
    url = f"{base}/evil.pth"
    work_dir = tmp_path / "work"
    common = ["--work-dir", str(work_dir), "--data-root", str(synthcity)]
    options = unique_name(f"url_{how}")
    if how == "test":
        argv = ["test", tiny, url, *common, "--cfg-options", *options]
    elif how == "resume":
        argv = ["train", tiny, "--resume", url, *common, "--cfg-options", *options]
    elif how == "load_from":
        argv = ["train", tiny, *common, "--cfg-options", *options, f"load_from={url}"]
    elif how == "init_cfg":
        argv = ["train", tiny, *common, "--cfg-options", *options,
                "model.backbone.init_cfg.type=Pretrained",
                f"model.backbone.init_cfg.checkpoint={url}"]
    else:
        work_dir.mkdir()
        (work_dir / "last_checkpoint").write_text(url)
        argv = ["train", tiny, "--resume", *common, "--cfg-options", *options]
    assert seg_sparse(*argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Refusing to load checkpoint" in err[0] and url in err[0]
    assert not marker.exists()


@pytest.mark.slow
def test_mmseg_tools_test_refuses_malicious_url(served, synthcity, tiny, tmp_path):
    base, marker = served
    tools_test = Path(mmseg.__file__).parent / ".mim" / "tools" / "test.py"
    options = [f"{loader}.dataset.data_root={synthcity}" for loader in
               ("train_dataloader", "val_dataloader", "test_dataloader")]
    result = subprocess.run(
        [sys.executable, str(tools_test), tiny, f"{base}/evil.pth", "--work-dir",
         str(tmp_path / "work"), "--cfg-options", *options],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TORCH_HOME=str(tmp_path / "torch_home")))
    assert result.returncode != 0
    assert "UnsafeCheckpointError" in result.stderr and "Refusing to load" in result.stderr
    assert not marker.exists()
