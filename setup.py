"""Ships ``seg_sparse_mmcv_hook.pth`` at the top of the wheel (site-packages), in regular and
editable installs alike; everything else is declared in setup.cfg."""

from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py

START_HOOK = "seg_sparse_mmcv_hook.pth"


class BuildPyWithStartHook(build_py):
    """build_py that also copies the start hook's ``.pth`` next to the packages.

    A regular wheel is made of ``build_lib``. An editable wheel (PEP 660) leaves ``build_lib``
    out and is made of the directory its ``install`` command targets, so there the file goes
    to ``install_lib``.
    """

    def run(self) -> None:
        super().run()
        target = self.build_lib
        if getattr(self, "editable_mode", False):
            target = self.get_finalized_command("install").install_lib
        self.mkpath(target)
        self.copy_file(START_HOOK, os.path.join(target, START_HOOK))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, START_HOOK)]


setup(cmdclass={"build_py": BuildPyWithStartHook})
