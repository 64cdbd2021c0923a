"""``seg-sparse demo``: the whole method on a laptop, with no dataset and no GPU.

Generates synthetic street scenes, trains a small dense DCN-free FCN and fine-tunes its sparse
twin on the CPU, evaluates both (mIoU, GFLOPs, densities), draws the sampled masks over a scene
and writes ``report.json``. Entry point: :func:`run_demo` with :class:`DemoSettings`.
"""

from .pipeline import REPORT_NAME, run_demo
from .settings import DemoError, DemoSettings

__all__ = ["REPORT_NAME", "DemoError", "DemoSettings", "run_demo"]
