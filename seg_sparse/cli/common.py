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
from seg_sparse.engine.distributed import CPU_DIST_TIMEOUT_S  # noqa: F401  (re-exported)
from seg_sparse.errors import UserInputError
from seg_sparse.fileio import check_writable_dir

LAUNCHERS = ("none", "pytorch", "slurm", "mpi")


class CommandError(UserInputError, RuntimeError):
    """A usage problem detected by the CLI itself (printed without a traceback)."""


class ConfigOptionsAction(DictAction):
    """mmengine's ``DictAction`` (``KEY=VALUE`` pairs, values parsed as Python literals) that
    names a pair without ``=VALUE`` or without a key instead of failing with a traceback."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        for pair in values or []:
            key, sep, _ = pair.partition("=")
            if not sep:
                raise argparse.ArgumentError(
                    self, f"'{pair}' has no '=VALUE': write KEY=VALUE, e.g. "
                    "train_cfg.max_iters=2")
            if not key:
                raise argparse.ArgumentError(self, f"'{pair}' has no key before '='")
        super().__call__(parser, namespace, values, option_string)


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
        action=ConfigOptionsAction,
        metavar="KEY=VALUE",
        help="override config keys, e.g. train_cfg.max_iters=2 "
        "'model.backbone.dilations=(1,1,2,4)'; a top-level variable (max_iters=5) re-reads the "
        "config with it. Unknown keys are an error with suggestions; prefix a key with '+' to "
        "add a new one on purpose (+env_cfg.dist_cfg.timeout=1800)",
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
    """Make ``--launcher pytorch`` work on CPU (gloo, a short timeout, a CPU DDP wrapper):
    :func:`seg_sparse.engine.distributed.setup_cpu_distributed`."""
    from seg_sparse.engine.distributed import setup_cpu_distributed

    setup_cpu_distributed(cfg)


def build_runner(cfg: Config):
    """``Runner.from_cfg``, or the registered runner when the config names ``runner_type``."""
    from mmengine.runner import Runner

    if "runner_type" not in cfg:
        return Runner.from_cfg(cfg)
    from mmseg.registry import RUNNERS

    return RUNNERS.build(cfg)


def add_command(subparsers: argparse._SubParsersAction, name: str, help: str, epilog: str,
                doc: str | None = None, description: str | None = None
                ) -> argparse.ArgumentParser:
    """A command's parser, built the same way for every command: ``help`` is its line in
    ``seg-sparse --help``; the description is ``description``, or the module docstring ``doc``
    after its first paragraph (without rst markup); the ``epilog`` examples keep their layout."""
    if description is None:
        description = (doc or "").split("\n\n", 1)[-1].replace("``", "")
    return subparsers.add_parser(name, help=help, description=description, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
