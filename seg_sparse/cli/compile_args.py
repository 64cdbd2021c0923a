"""``--compile [BACKEND]`` of ``seg-sparse train`` / ``test`` / ``bench`` (docs/training.md,
"Compiled training and testing")."""

from __future__ import annotations

import argparse

COMPILE_HELP = ("run the model through torch.compile: train through mmengine's compile=True "
                "(the Runner compiles train_step), test and bench by compiling the forward "
                "of backbone, neck and heads. BACKEND: 'inductor' (default: generated C++ / "
                "Triton kernels, minutes to compile on CPU) or e.g. 'aot_eager' (the same "
                "graphs on ATen kernels, fast to compile: a check that a config compiles)")


def add_compile_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compile", nargs="?", const="inductor", metavar="BACKEND",
                        help=COMPILE_HELP)


def compile_options(backend: str) -> dict[str, str]:
    """``torch.compile`` options for ``--compile BACKEND`` (CommandError for an unknown one)."""
    import torch

    from .common import CommandError

    known = torch._dynamo.list_backends(exclude_tags=())
    if backend not in known:
        raise CommandError(f"--compile: unknown torch.compile backend {backend!r}; choose one "
                           f"of {', '.join(sorted(known))}")
    return {} if backend == "inductor" else {"backend": backend}
