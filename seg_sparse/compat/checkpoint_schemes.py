"""Every checkpoint source mmengine knows, loaded through the weights-only loader.

mmengine's ``CheckpointLoader`` picks a loader by the path's scheme. Its own loaders call
``torch.load`` or ``torch.hub.load_state_dict_from_url`` with ``weights_only=False``, so a
crafted file behind a URL (``seg-sparse test CFG http://...``, ``--resume URL``,
``load_from``, ``init_cfg=dict(type='Pretrained', checkpoint=URL)``, a ``last_checkpoint``
file naming a URL) would run code while being unpickled. :func:`install` replaces each of them
by a loader that fetches the file the same way (same download cache, same model-zoo name
tables, rank 0 first in distributed runs) and then reads it with
:func:`~seg_sparse.compat.checkpoint.load_checkpoint_safely`, so the allowlist, the trusted
opt-in and the integrity check are the same for every source. A scheme registered later by
another package, whose loader is not one of these, is refused rather than trusted.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from seg_sparse.errors import UserInputError

from .checkpoint import load_checkpoint_bytes, load_checkpoint_safely

#: Attribute marking a loader as going through :func:`load_checkpoint_safely`. The loaders keep
#: mmengine's function names, which its log line ("Loads checkpoint by http backend") reads.
_SAFE_MARK = "_seg_sparse_weights_only"

Loader = Callable[..., Any]


class UnknownCheckpointSourceError(UserInputError, KeyError):
    """A model-zoo name or scheme that has no weights-only loader."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def _safe(loader: Loader) -> Loader:
    setattr(loader, _SAFE_MARK, True)
    return loader


def is_safe_loader(loader: Loader) -> bool:
    return bool(getattr(loader, _SAFE_MARK, False))


@_safe
def load_from_local(filename: str, map_location: Any = None) -> Any:
    return load_checkpoint_safely(filename, map_location=map_location)


def download(url: str) -> str:
    """The file behind ``url`` in torch hub's checkpoint cache (downloaded once, like
    mmengine's ``load_url``); in a distributed run rank 0 downloads first."""
    from mmengine.dist import barrier, get_dist_info

    rank, world_size = get_dist_info()
    path = _download_once(url) if rank == 0 else ""
    if world_size > 1:
        barrier()
        if rank > 0:
            path = _download_once(url)
    return path


def _download_once(url: str) -> str:
    from torch.hub import download_url_to_file, get_dir

    name = os.path.basename(urlparse(url).path)
    if not name:  # e.g. http://host/ : a stable name of our own
        name = hashlib.sha256(url.encode()).hexdigest()[:16] + ".pth"
    folder = os.path.join(get_dir(), "checkpoints")
    os.makedirs(folder, exist_ok=True)
    cached = os.path.join(folder, name)
    if not os.path.isfile(cached):
        download_url_to_file(url, cached, progress=False)
    return cached


@_safe
def load_from_http(url: str, map_location: Any = None) -> Any:
    return load_checkpoint_safely(download(url), map_location=map_location, source=url)


def _zoo_url(table: dict, scheme: str, name: str) -> str:
    if name not in table:
        raise UnknownCheckpointSourceError(f"'{scheme}{name}' is not a known {scheme} model name")
    return table[name]


@_safe
def load_from_torchvision(filename: str, map_location: Any = None) -> Any:
    from mmengine.runner import checkpoint as mmengine_checkpoint

    scheme, name = filename.split("://", 1)
    url = _zoo_url(mmengine_checkpoint.get_torchvision_models(), f"{scheme}://", name)
    return load_from_http(url, map_location)


@_safe
def load_from_openmmlab(filename: str, map_location: Any = None) -> Any:
    from mmengine.runner import checkpoint as mmengine_checkpoint

    scheme, name = filename.split("://", 1)
    name = mmengine_checkpoint.get_deprecated_model_names().get(name, name)
    url = _zoo_url(mmengine_checkpoint.get_external_models(), f"{scheme}://", name)
    if url.startswith(("http://", "https://")):
        return load_from_http(url, map_location)
    local = os.path.join(mmengine_checkpoint._get_mmengine_home(), url)
    return load_checkpoint_safely(local, map_location=map_location, source=filename)


@_safe
def load_from_mmcls(filename: str, map_location: Any = None) -> Any:
    from mmengine.runner import checkpoint as mmengine_checkpoint

    name = filename.split("://", 1)[1]
    url = _zoo_url(mmengine_checkpoint.get_mmcls_models(), "mmcls://", name)
    return mmengine_checkpoint._process_mmcls_checkpoint(load_from_http(url, map_location))


@_safe
def load_from_pavi(filename: str, map_location: Any = None) -> Any:
    try:
        from pavi import modelcloud
    except ImportError as err:
        raise ImportError("Please install pavi to load checkpoint from modelcloud.") from err
    model = modelcloud.get(filename[len("pavi://"):])
    with tempfile.TemporaryDirectory() as folder:
        local = os.path.join(folder, model.name)
        model.download(local)
        return load_checkpoint_safely(local, map_location=map_location, source=filename)


@_safe
def load_from_ceph(filename: str, map_location: Any = None, backend: str = "petrel") -> Any:
    from mmengine.fileio import get_file_backend

    data = get_file_backend(filename, backend_args={"backend": backend}).get(filename)
    return load_checkpoint_bytes(data, filename, map_location=map_location)


def _replacements() -> dict[Loader, Loader]:
    """mmengine's loader functions -> ours."""
    from mmengine.runner import checkpoint as mm

    return {
        mm.load_from_local: load_from_local,
        mm.load_from_http: load_from_http,
        mm.load_from_torchvision: load_from_torchvision,
        mm.load_from_openmmlab: load_from_openmmlab,
        mm.load_from_mmcls: load_from_mmcls,
        mm.load_from_pavi: load_from_pavi,
        mm.load_from_ceph: load_from_ceph,
    }


def _refusing_loader(prefix: str) -> Loader:
    @_safe
    def refuse(filename: str, map_location: Any = None) -> Any:
        raise UnknownCheckpointSourceError(
            f"checkpoint '{filename}': its scheme '{prefix}' has no weights-only loader in "
            "seg_sparse, so it is not loaded (its own loader could unpickle code); download "
            "the file and pass the local path")

    return refuse


def install() -> None:
    """Give every scheme of mmengine's ``CheckpointLoader`` its weights-only loader, and make
    the loader lookup refuse a scheme registered later without one."""
    from mmengine.runner import CheckpointLoader

    replacements = _replacements()
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if is_safe_loader(loader):
            continue
        safe = replacements.get(loader, _refusing_loader(prefix))
        CheckpointLoader.register_scheme(prefixes=prefix, loader=safe, force=True)
    if not getattr(CheckpointLoader._get_checkpoint_loader, _SAFE_MARK, False):
        CheckpointLoader._get_checkpoint_loader = _guarded_lookup(
            CheckpointLoader._get_checkpoint_loader)


def _guarded_lookup(lookup: Callable[[str], Loader]) -> classmethod:
    """``CheckpointLoader._get_checkpoint_loader`` that never returns an unsafe loader."""

    def get_checkpoint_loader(cls, path: str) -> Loader:
        loader = lookup(path)
        if is_safe_loader(loader):
            return loader
        prefix = next((p for p in cls._schemes if re.match(p, path)), "")
        return _refusing_loader(prefix)

    setattr(get_checkpoint_loader, _SAFE_MARK, True)
    return classmethod(get_checkpoint_loader)
