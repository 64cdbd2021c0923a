"""``seg-sparse``: command-line entry point (``seg_sparse.cli.main:main``).

Every command is a module ``seg_sparse/cli/<command>.py`` exposing ``add_parser(subparsers)``
(returning its parser, with an example in the epilog) and ``run(args) -> int``; register it
by adding its module name to :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

COMMANDS: tuple[str, ...] = (
    "train",
    "test",
    "gen_data",
    "gen_coco",
    "convert_cityscapes",
    "flops",
    "visualize",
    "sparsity",
    "curve",
    "stability",
    "prune",
    "demo",
    "bench",
    "export",
    "gpu_check",
)
EPILOG = """examples:
  seg-sparse gen-data --help
  seg-sparse train configs/cpu/fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256.py
  seg-sparse test CONFIG CHECKPOINT --cityscapes-eval
Set SEG_SPARSE_DEBUG=1 to see the traceback of a reported error.
"""


def build_parser() -> argparse.ArgumentParser:
    from seg_sparse import __version__

    parser = argparse.ArgumentParser(
        prog="seg-sparse",
        description="Spatially adaptive inference with stochastic feature sampling and "
        "interpolation, on mmsegmentation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"{__package__}.{name}")
        module.add_parser(subparsers).set_defaults(_run=module.run)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by the user's input: reported in one line, without a traceback."""
    from seg_sparse.errors import UserInputError

    return (UserInputError, FileNotFoundError)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_argv = argv[argv.index(args.command) + 1:]
    from seg_sparse.errors import RunFailure

    try:
        code = int(args._run(args) or 0)
    except (*_user_errors(), RunFailure) as err:
        if os.environ.get("SEG_SPARSE_DEBUG") == "1":
            raise
        print(f"seg-sparse {args.command}: error: {err}", file=sys.stderr)
        return 1 if isinstance(err, RunFailure) else 2
    from seg_sparse.engine.distributed import close_process_group

    close_process_group()
    return code


if __name__ == "__main__":
    sys.exit(main())
