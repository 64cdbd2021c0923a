"""The demo end to end: data -> dense twin -> sparse models -> evaluation -> figures -> report.

The sparse model is fine-tuned from the dense twin's checkpoint: on 2 CPU cores there is time
for a few dozen iterations only, and starting from the dense weights lets them go to learning
where to sample (the comparison then shows what sampling costs in accuracy, not what a
shorter training costs). The third model samples the FCN head too (beyond the paper,
docs/sparse_head.md) and is fine-tuned from the same checkpoint for the same iterations.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from seg_sparse.data.synthetic import generate_synthetic_cityscapes
from seg_sparse.fileio import check_writable_dir

from .figures import write_figures
from .report_json import build_report, format_summary, write_report
from .settings import (
    DENSE_CONFIG,
    SPARSE_CONFIG,
    SPARSE_HEAD_CONFIG,
    DemoError,
    DemoSettings,
    configs_dir,
)
from .training import evaluate, train

DATA_SUMMARY = "demo_data.json"
REPORT_NAME = "report.json"
STAGES = (
    "Synthetic street scenes (Cityscapes layout)",
    "Training the dense twin",
    "Evaluating the dense twin (mIoU, GFLOPs)",
    "Fine-tuning the sparse model from the dense twin",
    "Evaluating the sparse model (mIoU, GFLOPs, densities)",
    "Fine-tuning the sparse-backbone + sparse-head model from the dense twin",
    "Evaluating the sparse-head model (mIoU, GFLOPs, densities)",
    "Figures and report",
)

Echo = Callable[[str], None]


class _Stages:
    """Numbered stage headers with the time elapsed since the start."""

    def __init__(self, echo: Echo) -> None:
        self.echo = echo
        self.start = time.perf_counter()
        self.index = 0

    def next(self, detail: str = "") -> None:
        self.index += 1
        elapsed = time.perf_counter() - self.start
        title = STAGES[self.index - 1] + (f": {detail}" if detail else "")
        self.echo(f"\n==> [{self.index}/{len(STAGES)}] {title}   (t = {elapsed:.0f} s)")


def prepare_data(settings: DemoSettings, echo: Echo) -> Path:
    """Generate the scenes under the settings' data folder, or reuse a complete earlier set."""
    root = settings.data_root
    summary_path = root / DATA_SUMMARY
    h, w = settings.size
    wanted = {"num_train": settings.num_train, "num_val": settings.num_val, "height": h,
              "width": w, "seed": settings.seed}
    if summary_path.is_file():
        try:
            previous = json.loads(summary_path.read_text())
        except (OSError, ValueError):
            previous = None
        if isinstance(previous, dict) and all(previous.get(k) == v for k, v in wanted.items()):
            echo(f"reusing {settings.num_train} + {settings.num_val} scenes in {root}")
            return root
    summary = generate_synthetic_cityscapes(root, settings.num_train, settings.num_val, h, w,
                                            settings.seed)
    summary_path.write_text(json.dumps({**wanted, **summary}, indent=2) + "\n")
    echo(f"wrote {settings.num_train} train + {settings.num_val} val scenes to {root}")
    return root


def _check_device(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        raise DemoError("--device cuda: no CUDA GPU is available; use --device cpu")
    if device == "cpu" and torch.cuda.is_available():
        raise DemoError("--device cpu on a machine with a GPU: run with CUDA_VISIBLE_DEVICES= "
                        "(seg-sparse demo sets it when started from the command line)")


def run_demo(settings: DemoSettings, echo: Echo = print) -> dict[str, Any]:
    """Run every stage; returns the report (also written to ``<out_dir>/report.json``)."""
    with warnings.catch_warnings():
        # mmseg / mmengine deprecation and usage notes about their own defaults
        warnings.filterwarnings("ignore", category=UserWarning, module=r"(mmseg|mmengine)\.")
        return _run_stages(settings, echo)


def _run_stages(settings: DemoSettings, echo: Echo) -> dict[str, Any]:
    start = time.perf_counter()
    check_writable_dir(settings.out_dir)  # before spending minutes on training
    _check_device(settings.device)
    configs = configs_dir()
    stages = _Stages(echo)

    stages.next(f"{settings.num_train} train + {settings.num_val} val, "
                f"{settings.size[0]}x{settings.size[1]}")
    prepare_data(settings, echo)

    stages.next("mmengine Runner, CPU" if settings.device == "cpu" else "mmengine Runner")
    dense = train("dense", configs / DENSE_CONFIG, settings, settings.iters)
    stages.next()
    evaluate(dense, settings.seed)
    echo(f"dense: mIoU {dense.metrics['mIoU']:.2f}, "
         f"backbone {dense.metrics['gflops_backbone_dense']:.4f} GFLOPs")

    stages.next("the new sampling layers start at p = 0.95 everywhere")
    sparse = train("sparse", configs / SPARSE_CONFIG, settings, settings.sparse_iters,
                   load_from=dense.checkpoint)
    stages.next("stochastic masks, seeded")
    evaluate(sparse, settings.seed)
    echo(f"sparse: mIoU {sparse.metrics['mIoU']:.2f}, backbone "
         f"{sparse.metrics['gflops_backbone_sparse']:.4f} GFLOPs as executed, "
         f"mean density {sparse.metrics['density_mean']:.3f}")

    stages.next("the head's convs sample too")
    sparse_head = train("sparse_head", configs / SPARSE_HEAD_CONFIG, settings,
                        settings.sparse_iters, load_from=dense.checkpoint)
    stages.next("stochastic masks, seeded")
    evaluate(sparse_head, settings.seed)
    m = sparse_head.metrics
    echo(f"sparse head: mIoU {m['mIoU']:.2f}, total {m['gflops_total_sparse']:.4f} GFLOPs as "
         f"executed (head {m['gflops_head_sparse']:.4f}), mean density "
         f"{m['density_mean']:.3f}, head {m['head_density_mean']:.3f}")

    stages.next()
    figures = write_figures(dense, sparse, sparse_head, settings.out_dir, settings.seed)
    run_settings = {**asdict(settings), "out_dir": str(settings.out_dir),
                    "data_root": str(settings.data_root), "size": list(settings.size),
                    "torch_threads": torch.get_num_threads()}
    report = build_report(dense, sparse, sparse_head, figures, run_settings,
                          time.perf_counter() - start)
    report_path = write_report(report, settings.out_dir / REPORT_NAME)
    echo("\n" + format_summary(report, report_path))
    return report
