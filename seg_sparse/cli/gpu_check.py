"""``seg-sparse gpu-check [CONFIG]``: everything a short GPU window should measure, in one run.

Equivalence of the sparse path with the masked path on the device (every block kind and
density, bfloat16 autocast, the whole backbone and segmentor, the CUDA-graph replay), then the
backends table (dense / masked / compiled masked / sparse (Triton) / sparse in a CUDA graph /
auto) at 512x1024 and 1024x2048, then a training step of the sampling model against its dense
twin, then bfloat16 and TF32 tables and a compiled training step while the time budget
(``--budget``, default 400 s) lasts. Prints markdown tables to paste into
docs/benchmarks.md; exit code 1 if an equivalence check fails. ``--dry-run`` runs the same
code at tiny sizes (a CPU check of the script itself).
"""

from __future__ import annotations

import argparse
import json
import os.path as osp

from .bench import _positive
from .common import CommandError, add_command

NAME = "gpu-check"
DEFAULT_CONFIG = ("sparse_fcn/"
                  "sparse-fcn-sparsehead_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w0.1.py")
#: Seconds the optional phases may take: the whole check stays under 8 minutes on one GPU.
DEFAULT_BUDGET_S = 400.0
DRY_RUN_CONFIG = "cpu/sparse-fcn-sparsehead_r50-d8-dcn-w16_1xb4-demo_synthcity-64x128.py"
EPILOG = """examples:
  # on a GPU machine: the whole check, under 8 minutes, tables printed and saved
  seg-sparse gpu-check --out gpu_check.json
  # the script itself on a CPU, at tiny sizes (about a minute)
  seg-sparse gpu-check --device cpu --dry-run
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = add_command(
        subparsers, NAME, epilog=EPILOG, doc=__doc__,
        help="equivalence + backends table + training step on a GPU, in one short run")
    parser.add_argument("config", nargs="?", help="sampling model config (default: the "
                        f"paper's model with the sampled head, configs/{DEFAULT_CONFIG}; "
                        f"with --dry-run configs/{DRY_RUN_CONFIG})")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny sizes, one round, torch.compile's eager backend")
    parser.add_argument("--budget", type=_positive, metavar="SECONDS",
                        help=f"time budget: a phase starts only if it fits (default "
                        f"{DEFAULT_BUDGET_S:.0f}; none with --dry-run)")
    parser.add_argument("--out", metavar="FILE", help="write everything measured as JSON")
    return parser


def _plan(args: argparse.Namespace):
    from seg_sparse.benchmark.gpu_check import GpuCheckPlan

    if not args.dry_run:
        return GpuCheckPlan(budget_s=args.budget or DEFAULT_BUDGET_S)
    return GpuCheckPlan(inputs=((32, 64),), densities=(0.3,), check_size=(32, 64), repeats=1,
                        warmup=0, train_crop=(32, 64), train_batch=2,
                        extra_precisions=("bf16",), compile_backend="eager",
                        block_batches=(1,), budget_s=args.budget)


def run(args: argparse.Namespace) -> int:
    import torch

    from seg_sparse.benchmark.gpu_check import run_gpu_check
    from seg_sparse.benchmark.models import build_bench_models
    from seg_sparse.benchmark.tables import machine_line
    from seg_sparse.demo.settings import configs_dir
    from seg_sparse.fileio import atomic_write_text, check_writable_dir

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CommandError("--device cuda: no CUDA device is available (try --device cpu "
                           "--dry-run to check the script)")
    config = args.config or str(configs_dir() / (DRY_RUN_CONFIG if args.dry_run
                                                 else DEFAULT_CONFIG))
    if not osp.isfile(config):
        raise CommandError(f"config file '{config}' does not exist")
    if args.out:  # before minutes of work, not after
        check_writable_dir(osp.dirname(osp.abspath(args.out)))
    models = build_bench_models(config, None, None, args.device, with_training=True)
    print(machine_line(args.device))
    print(_software_line())
    result = run_gpu_check(models, _plan(args))
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return 0 if result["passed"] else 1


def _software_line() -> str:
    """Triton's version and the backend 'sparse' runs on each device type checked."""
    import importlib.util

    from seg_sparse.sampling.execution import backend_for

    triton = "not installed"
    if importlib.util.find_spec("triton") is not None:
        import triton as triton_module

        triton = triton_module.__version__
    import torch

    line = f"triton {triton} | 'sparse' runs on: cpu={backend_for('cpu').name}"
    return line + (f", cuda={backend_for('cuda').name}" if torch.cuda.is_available() else "")
