"""Subcommands that reuse another module's own ``build_parser()`` / ``main(argv)``.

The data tools are standalone scripts too (``python -m seg_sparse.data.synthetic``); their
parser is reused as the subcommand's parser so options and help stay in one place.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
from types import ModuleType

from .common import CommandError


class DelegatedCommand:
    """``add_parser`` / ``run`` for a module exposing ``build_parser()`` and ``main(argv)``."""

    def __init__(self, name: str, module: str, help: str) -> None:
        self.name = name
        self.module_name = module
        self.help = help

    def _module(self) -> ModuleType:
        return importlib.import_module(self.module_name)

    def add_parser(self, subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
        try:
            source = self._call(self._module().build_parser)
        except ImportError as err:  # keep the other commands usable
            parser = subparsers.add_parser(self.name, help=f"{self.help} (unavailable)")
            parser.set_defaults(_unavailable=f"'{self.name}' is unavailable: {err}")
            return parser
        has_help = any("-h" in action.option_strings for action in source._actions)
        return subparsers.add_parser(
            self.name,
            parents=[source],
            add_help=not has_help,
            help=self.help,
            description=source.description,
            epilog=source.epilog,
            formatter_class=source.formatter_class,
        )

    def run(self, args: argparse.Namespace) -> int:
        if getattr(args, "_unavailable", None):
            raise CommandError(args._unavailable)
        return int(self._call(self._module().main, list(args.command_argv)) or 0)

    def _call(self, function, *args):
        """Pass ``prog='seg-sparse <name>'`` where the module's function accepts it."""
        if "prog" in inspect.signature(function).parameters:
            return function(*args, prog=f"seg-sparse {self.name}")
        return function(*args)
