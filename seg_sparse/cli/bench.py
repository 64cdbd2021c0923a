"""``seg-sparse bench [CONFIG]``: wall-clock speed of dense, masked and sparse execution.

Builds the config's sampling model and its dense twin with the same weights (random, or
``--checkpoint``) and times, alternated in one process with medians over ``--repeats`` rounds
(warm-up excluded): the dense twin on its fastest path, the sampling model computing densely
and masking ("masked", the training path), and the sampling model computing only where it
sampled ("sparse", execution='auto'). Masks have exact densities (grid prior included) and,
with ``--checkpoint`` (a file or a URL, read by the weights-only loader), also the checkpoint's
own masks on ``--image``. Reports per input size, part (backbone / whole segmentor, or for a
detection config backbone / whole detector) and density: times, speedup (dense / sparse), the
FLOPs ratio
(executed / dense GFLOPs of the project's counter), the realization (speedup x FLOPs ratio:
1.0 turns every saved FLOP into time) and peak memory. A config whose decode head samples
too (``SparseFCNHead``) gets head masks at the same density, and its segmentor rows include
the head (its dense twin's head computes densely). Detection FLOPs are the backbone's (the
paper's convention): whole-detector rows have no FLOPs ratio. ``--train`` adds a training step
of both models, ``--compile`` eager vs torch.compile (training step and masked inference,
dense twin and sampled). A benchmark, not a test: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
from typing import Any

from seg_sparse.fileio import check_input_file

from .common import CommandError, ConfigOptionsAction, DeprecatedAlias, add_command

NAME = "bench"
DEFAULT_CONFIG = "sparse_fcn/sparse-fcn_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w0.1.py"
QUICK = dict(inputs=["512x1024"], densities=[1.0, 0.5, 0.3], repeats=3)
EPILOG = """examples:
  # the paper's model (default config), 512x1024, densities 1.0 / 0.5 / 0.3 (a few minutes)
  seg-sparse bench --quick --out-json bench.json
  # the full table: 512x1024 and 1024x2048, densities 1.0 0.75 0.5 0.3 0.15, 2 threads
  seg-sparse bench --threads 2 --out-json bench.json
  # a trained checkpoint's own masks on a Cityscapes image, plus the training step
  seg-sparse bench CONFIG --checkpoint iter_60000.pth \\
      --image frankfurt_000000_000294_leftImg8bit.png --train
  # training step only: the CPU family at its crop and batch
  seg-sparse bench configs/cpu/sparse-fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256_w0.1.py \\
      --train-only --train-crop 128x256 --train-batch 4
  # eager vs torch.compile, dense twin vs sampled: training step and masked inference of the
  # CPU family (compiling takes minutes on CPU; docs/benchmarks.md)
  seg-sparse bench configs/cpu/sparse-fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256_w0.1.py \
      --train-only --compile --train-crop 128x256 --train-batch 4 --threads 2
  # the whole segmentor with the decode head sampled too (docs/sparse_head.md)
  seg-sparse bench \
      configs/sparse_fcn/sparse-fcn-sparsehead_r50-d8-dcn_4xb2-60k_cityscapes-512x1024_w0.1.py \
      --inputs 512x1024 --parts segmentor --densities 1.0 0.5 0.3 --threads 2
  # a detection config: the backbone and the whole detector (predict: FPN, RPN, RoI head, NMS)
  seg-sparse bench \
      configs/sparse_faster_rcnn/sparse-faster-rcnn_r101-dcn_fpn_8xb1-1x_coco_w0.1.py \
      --inputs 800x1344 --densities 1.0 0.5 0.3 --repeats 3
  # on a GPU
  seg-sparse bench --device cuda --quick
  # on a GPU, the backends side by side (masked / compiled / Triton / CUDA graph / auto)
  seg-sparse bench --device cuda --quick --backends --precisions default bf16
"""


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 512x1024, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return h, w


def _density(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"density must be a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"density must be in [0, 1], got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = add_command(
        subparsers, NAME, epilog=EPILOG, doc=__doc__,
        help="speed of dense vs masked vs sparse execution (backbone, segmentor, training)")
    parser.add_argument("config", nargs="?", help="sampling model config (default: the "
                        f"paper's model, configs/{DEFAULT_CONFIG})")
    parser.add_argument("--checkpoint", help="trained weights, a file or a URL (default: "
                        "random weights; the speed of a path does not depend on the weights' "
                        "values)")
    parser.add_argument("--image", help="with --checkpoint: also time the checkpoint's own "
                        "masks on this image")
    parser.add_argument("--inputs", nargs="+", type=_size, metavar="HxW",
                        help="network input sizes (default: 512x1024 1024x2048)")
    parser.add_argument("--densities", nargs="+", type=_density, metavar="D",
                        help="mask densities (default: 1.0 0.75 0.5 0.3 0.15)")
    parser.add_argument("--parts", nargs="+", choices=("backbone", "segmentor", "detector"),
                        help="what to time (default: backbone and the whole model: segmentor, "
                        "or detector for a detection config)")
    parser.add_argument("--repeats", type=_positive, default=5,
                        help="timed rounds per configuration; medians are reported (default 5)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="untimed rounds of every run before the timed ones (default 0; "
                        "each model runs once untimed anyway)")
    parser.add_argument("--crossover", action="store_true",
                        help="also time every sampled layer gathered and none gathered "
                        "(full-map convs): where they cross is auto's per-layer threshold")
    parser.add_argument("--threads", type=_positive,
                        help="torch intra-op threads (default: torch's choice; always printed)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--quick", action="store_true",
                        help="512x1024, densities 1.0 0.5 0.3, 3 rounds")
    parser.add_argument("--train", action="store_true",
                        help="also time one training step of both models")
    parser.add_argument("--train-only", action="store_true",
                        help="only the training-step figures (implies --train)")
    parser.add_argument("--train-crop", type=_size, default=(512, 1024), metavar="HxW",
                        help="training crop for --train (default 512x1024)")
    parser.add_argument("--train-batch", type=_positive, default=1,
                        help="training batch for --train (default 1)")
    parser.add_argument("--backends", action="store_true",
                        help="instead of the table above: dense, masked, compiled masked, "
                        "sparse (the device's backend: Triton on CUDA), sparse in a CUDA "
                        "graph (CUDA) and auto side by side (docs/gpu.md)")
    parser.add_argument("--precisions", nargs="+", choices=("default", "fp32", "tf32", "bf16"),
                        default=["default"], help="with --backends: torch's defaults (TF32 "
                        "convolutions), no TF32, TF32 everywhere, bfloat16 autocast (default: "
                        "default)")
    parser.add_argument("--no-memory", action="store_true", help="skip peak-memory figures")
    parser.add_argument("--compile", nargs="?", const="inductor", metavar="BACKEND",
                        help="also time eager vs torch.compile (BACKEND, default inductor) of "
                        "the dense twin and the sampled model: a training step at "
                        "--train-crop / --train-batch and masked inference at that crop "
                        "(with --train-only: only this table)")
    parser.add_argument("--out-json", metavar="FILE", help="write the rows as JSON")
    parser.add_argument("--out", dest="out_json", action=DeprecatedAlias,
                        replacement="--out-json")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow a trusted legacy checkpoint (unpickling can run code)")
    parser.add_argument("--cfg-options", nargs="+", action=ConfigOptionsAction, metavar="KEY=VALUE",
                        help="override config keys (checked, as for train/test)")
    return parser


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    quick = QUICK if args.quick else {}
    inputs = args.inputs or [_size(s) for s in quick.get("inputs", ["512x1024", "1024x2048"])]
    densities = args.densities or quick.get("densities", [1.0, 0.75, 0.5, 0.3, 0.15])
    repeats = quick.get("repeats", args.repeats) if args.quick and args.repeats == 5 \
        else args.repeats
    return dict(inputs=inputs, densities=densities, repeats=repeats)


def _config_path(args: argparse.Namespace) -> str:
    if args.config:
        return args.config
    from seg_sparse.demo.settings import configs_dir

    return str(configs_dir() / DEFAULT_CONFIG)


def run(args: argparse.Namespace) -> int:
    import torch

    from seg_sparse.benchmark import benchmark_inference, benchmark_training
    from seg_sparse.benchmark.tables import format_inference, format_training, machine_line

    if args.image and not args.checkpoint:
        raise CommandError("--image needs --checkpoint (it times the checkpoint's own masks)")
    if args.image and args.backends:
        raise CommandError("--image is not supported with --backends (exact-density masks "
                           "only)")
    if args.image:
        check_input_file(args.image, "image")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CommandError("--device cuda: no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = _settings(args)
    args.train = args.train or args.train_only
    compiled_with = None
    if args.compile:
        from .compile_args import compile_options

        compiled_with = compile_options(args.compile)  # a bad backend fails before building
    config = _config_path(args)
    parts = _parts(args.parts, config, args.cfg_options)
    models = _build_models(args, config)
    print(machine_line(args.device))
    rows: list[dict[str, Any]] = []
    if args.backends and not args.train_only:
        rows += _backend_rows(args, models, settings)
    elif not args.train_only:
        image = _load_image(models.sparse, args.image) if args.image else None
        inference = benchmark_inference(
            models.sparse, models.dense, settings["inputs"], settings["densities"],
            parts, settings["repeats"], args.warmup, image=image,
            memory=not args.no_memory, crossover=args.crossover)
        print(format_inference(inference))
        rows += [r.to_dict() for r in inference]
    if args.train and not (args.train_only and args.compile):
        training = benchmark_training(
            models.sparse_train, models.dense_train, args.train_crop, args.train_batch,
            models.num_classes, models.label, repeats=settings["repeats"],
            warmup=args.warmup, memory=not args.no_memory, task=models.task)
        print(format_training([training]))
        rows.append(training.to_dict())
    if compiled_with is not None:
        from seg_sparse.benchmark.compiled import benchmark_compile, format_compile

        compiled = benchmark_compile(
            models.sparse, models.dense, models.sparse_train, models.dense_train,
            args.train_crop, args.train_batch, models.num_classes, settings["repeats"],
            args.warmup, compiled_with)
        print(format_compile(compiled))
        rows += [r.to_dict() for r in compiled]
    if args.out_json:
        os.makedirs(osp.dirname(osp.abspath(args.out_json)), exist_ok=True)
        with open(args.out_json, "w") as f:
            json.dump(rows, f, indent=2)
        print(f"wrote {args.out_json}")
    return 0


def _parts(requested: list[str] | None, config: str, cfg_options: dict | None) -> list[str]:
    """The parts to time, checked against the config's task (before any model is built)."""
    from seg_sparse.apis import load_config
    from seg_sparse.apis.task import is_detection
    from seg_sparse.benchmark.inference import DETECTION_PARTS, PARTS

    detection = is_detection(load_config(config, cfg_options))
    allowed = DETECTION_PARTS if detection else PARTS
    parts = list(requested or allowed)
    wrong = [p for p in parts if p not in allowed]
    if wrong:
        task = "detection" if detection else "segmentation"
        raise CommandError(f"--parts {' '.join(wrong)}: '{config}' is a {task} config; its "
                           f"parts are {' and '.join(allowed)}")
    return parts


def _build_models(args: argparse.Namespace, config: str):
    from seg_sparse.benchmark.models import build_bench_models

    check_input_file(config, "config file")
    if args.checkpoint and "://" not in args.checkpoint:  # URLs: the weights-only loader
        check_input_file(args.checkpoint, "checkpoint")
    return build_bench_models(config, args.checkpoint, args.cfg_options, args.device,
                              args.trust_checkpoint, with_training=args.train or bool(args.compile))


def _load_image(model, path: str):
    from seg_sparse.benchmark.models import preprocess_image

    return preprocess_image(model, path)


def _backend_rows(args: argparse.Namespace, models, settings: dict[str, Any]) -> list[dict]:
    """``--backends``: the backends table (seg_sparse.benchmark.backends), printed as markdown."""
    from seg_sparse.benchmark.backends import benchmark_backends, crossover_hint, format_backends

    notes: list[str] = []
    # the compiled column on CUDA only: inductor's CPU compile of the whole model takes
    # minutes on a small machine
    compiled = ("default",) if args.device.startswith("cuda") else ()
    if not compiled:
        notes.append("no compiled masked column on CPU")
    rows = benchmark_backends(models.sparse, models.dense, settings["inputs"],
                              settings["densities"], args.parts, args.precisions,
                              settings["repeats"], args.warmup, compile_precisions=compiled,
                              notes=notes)
    print(format_backends(rows))
    print(crossover_hint(rows))
    for note in notes:
        print(f"note: {note}")
    return [r.to_dict() for r in rows]
