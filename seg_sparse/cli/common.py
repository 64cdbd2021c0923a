"""Options and config handling shared by the ``train`` and ``test`` commands.

Mirrors mmseg's ``tools/train.py`` / ``tools/test.py`` (same option names) with three additions:
checked ``--cfg-options`` and values (:func:`seg_sparse.apis.load_config`), ``--data-root`` for
all three dataloaders at once, and a launcher setup that also works on CPU-only machines.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction

from seg_sparse.apis import load_config
from seg_sparse.errors import UserInputError
from seg_sparse.fileio import check_writable_dir

LAUNCHERS = ("none", "pytorch", "slurm", "mpi")
#: Seconds a CPU (gloo) rank waits for the others in a collective before it fails, instead of
#: gloo's 30 minutes: a crashed or hung rank ends the run soon. Long waits are legitimate only
#: when one rank works alone (e.g. the official Cityscapes evaluation on rank 0); raise it with
#: --cfg-options +env_cfg.dist_cfg.timeout=SECONDS.
CPU_DIST_TIMEOUT_S = 600


class CommandError(UserInputError, RuntimeError):
    """A usage problem detected by the CLI itself (printed without a traceback)."""


class DeprecatedAlias(argparse.Action):
    """An old option spelling kept working: stores into the new option's ``dest`` and says on
    stderr which spelling replaces it (``help`` is hidden)."""

    def __init__(self, option_strings: list[str], dest: str, replacement: str,
                 **kwargs: object) -> None:
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)  # type: ignore[arg-type]
        self.replacement = replacement

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(f"warning: {parser.prog} {option_string} is deprecated, use {self.replacement}",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--work-dir``, ``--data-root``, ``--cfg-options``, ``--launcher``, ``--local-rank``."""
    parser.add_argument(
        "--work-dir",
        help="directory for logs, checkpoints and metrics "
        "(default: ./work_dirs/<config name>, or work_dir from the config)",
    )
    parser.add_argument(
        "--data-root",
        help="dataset root for the train/val/test dataloaders (sets their dataset.data_root; "
        "for detection also the COCO metrics' ann_file)",
    )
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        metavar="KEY=VALUE",
        help="override config keys, e.g. train_cfg.max_iters=2 "
        "'model.backbone.dilations=(1,1,2,4)'. Unknown keys are an error with suggestions; "
        "prefix a key with '+' to add a new one on purpose (+env_cfg.dist_cfg.timeout=1800)",
    )
    parser.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="none",
        help="job launcher: 'pytorch' under torchrun (gloo on CPU-only machines)",
    )
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0,
                        help=argparse.SUPPRESS)


def config_from_args(args: argparse.Namespace) -> Config:
    """:func:`seg_sparse.apis.load_config` of ``args.config`` plus the launcher and the work
    dir (created, and proven writable, before anything long runs)."""
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    cfg = load_config(args.config, args.cfg_options, args.data_root)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])
    check_writable_dir(cfg.work_dir)
    setup_launcher(cfg)
    return cfg


def setup_launcher(cfg: Config) -> None:
    """Make ``--launcher pytorch`` work on CPU: gloo backend with a :data:`CPU_DIST_TIMEOUT_S`
    default timeout, and a CPU-capable DDP wrapper.

    mmengine's own init calls ``torch.cuda.set_device`` (fails without a GPU) and wraps the
    model with ``device_ids=[LOCAL_RANK]`` (refused by DDP for CPU modules), so on CPU the
    process group is initialised here and seg_sparse's CPU-compatible wrapper is selected.
    """
    import torch

    if cfg.launcher == "none" or torch.cuda.is_available():
        return
    if cfg.launcher != "pytorch":
        raise CommandError(
            f"--launcher {cfg.launcher} needs GPUs; on a CPU-only machine use torchrun with "
            "--launcher pytorch (gloo backend)."
        )
    import torch.distributed as dist

    env_cfg = cfg.setdefault("env_cfg", {})
    dist_cfg = dict(env_cfg.get("dist_cfg") or {})
    dist_cfg["backend"] = "gloo"
    dist_cfg.setdefault("timeout", CPU_DIST_TIMEOUT_S)
    env_cfg["dist_cfg"] = dist_cfg
    if "RANK" not in os.environ:
        raise CommandError("--launcher pytorch expects to be started by torchrun "
                           "(RANK/WORLD_SIZE/MASTER_ADDR are not set)")
    if not dist.is_initialized():
        from datetime import timedelta

        kwargs = {k: v for k, v in dist_cfg.items() if k != "backend"}
        kwargs["timeout"] = timedelta(seconds=kwargs["timeout"])
        dist.init_process_group(backend="gloo", **kwargs)
    if cfg.get("model_wrapper_cfg") is None:
        cfg.model_wrapper_cfg = dict(
            type="CPUCompatibleDistributedDataParallel",
            broadcast_buffers=False,
            find_unused_parameters=cfg.get("find_unused_parameters", False),
        )


def build_runner(cfg: Config):
    """``Runner.from_cfg``, or the registered runner when the config names ``runner_type``."""
    from mmengine.runner import Runner

    if "runner_type" not in cfg:
        return Runner.from_cfg(cfg)
    from mmseg.registry import RUNNERS

    return RUNNERS.build(cfg)
