"""``seg-sparse export CONFIG``: a segmentor as a deployable ``torch.export`` program (.pt2) or
ONNX model (.onnx), optionally checked against eager PyTorch (docs/deployment.md).

The exported function takes a normalized image batch (B, 3, H, W) and returns the logits at
the input size. Sampling layers export their masked path (every convolution on the full map,
masks applied: no time saved); ``--dense-twin`` exports the same weights without the sampling
layers. ONNX needs the ``onnx`` extra (onnx, onnxscript, onnxruntime); the deformable
convolution becomes ONNX's DeformConv (opset 19).
"""

from __future__ import annotations

import argparse
import os.path as osp

from mmengine.config import DictAction

from .bench import _size
from .common import CommandError, add_command

NAME = "export"
EPILOG = """examples:
  # the dense twin of a trained sparse model as a torch.export program, checked against eager
  seg-sparse export configs/cpu/sparse-fcn_r50-d8-dcn-w16_1xb4-300i_synthcity-128x256_w0.1.py \\
      --checkpoint work_dirs/x/iter_300.pth --dense-twin --input-size 128x256 \\
      --out deploy/dense.pt2 --check
  # the same as ONNX (opset 19), run by onnxruntime for the check
  seg-sparse export CONFIG --checkpoint CKPT --dense-twin --out deploy/dense.onnx --check
  # the sampled model's masked path, batch and image size left symbolic
  seg-sparse export CONFIG --checkpoint CKPT --out deploy/sampled.pt2 --dynamic --check
  # load and run a program elsewhere (python):
  #   import seg_sparse.ops, torch
  #   logits = torch.export.load('deploy/dense.pt2').module()(images)
"""
FORMATS = {".pt2": "pt2", ".onnx": "onnx"}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = add_command(
        subparsers, NAME, epilog=EPILOG, doc=__doc__,
        help="export a segmentor as a torch.export program (.pt2) or ONNX model")
    parser.add_argument("config", help="segmentation config file path")
    parser.add_argument("--checkpoint", help="trained weights (default: the config's "
                        "initialisation, for trying the export out)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="output file: .pt2 (torch.export) or .onnx")
    parser.add_argument("--dense-twin", action="store_true",
                        help="export the dense twin (the same weights without sampling layers)")
    parser.add_argument("--input-size", type=_size, default=(512, 1024), metavar="HxW",
                        help="example input size (default 512x1024)")
    parser.add_argument("--batch", type=int, default=1, help="example batch size (default 1)")
    parser.add_argument("--dynamic", action="store_true",
                        help=".pt2: keep batch, height and width symbolic where the model "
                        "allows it")
    parser.add_argument("--check", action="store_true",
                        help="run the exported model on a random input and compare with eager "
                        "PyTorch (max abs difference; exit 1 above 1e-4 relative)")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow a trusted legacy checkpoint (unpickling can run code)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE",
                        help="override config keys (checked, as for train/test)")
    return parser


def run(args: argparse.Namespace) -> int:
    fmt = FORMATS.get(osp.splitext(args.out)[1].lower())
    if fmt is None:
        raise CommandError(f"--out '{args.out}': the file name must end in .pt2 or .onnx")
    if args.dynamic and fmt != "pt2":
        raise CommandError("--dynamic applies to .pt2 programs")
    if args.batch <= 0:
        raise CommandError(f"--batch must be positive, got {args.batch}")
    if not osp.isfile(args.config):
        raise CommandError(f"config file '{args.config}' does not exist")
    if args.checkpoint and not osp.isfile(args.checkpoint):
        raise CommandError(f"checkpoint '{args.checkpoint}' does not exist")
    import torch

    from seg_sparse.apis import build_eval_model, load_config, load_weights
    from seg_sparse.apis import export as ex

    cfg = load_config(args.config, args.cfg_options)
    model = build_eval_model(cfg)
    if args.checkpoint:
        load_weights(model, args.checkpoint, args.trust_checkpoint)
    if args.dense_twin:
        twin = build_eval_model(ex.dense_twin_config(cfg))
        twin.load_state_dict(model.state_dict(), strict=False)
        model = twin
    example = torch.randn(args.batch, 3, *args.input_size,
                          generator=torch.Generator().manual_seed(0))
    if fmt == "pt2":
        program = ex.export_program(model, example, args.dynamic)
        ex.save_program(program, args.out)
    else:
        ex.export_onnx(model, example, args.out)
    print(f"wrote {args.out} ({'dense twin' if args.dense_twin else 'sampled, masked path'}, "
          f"{fmt}, example input {args.batch}x3x{args.input_size[0]}x{args.input_size[1]})")
    return _check(args, fmt, model, example) if args.check else 0


def _check(args: argparse.Namespace, fmt: str, model, example) -> int:
    import torch

    from seg_sparse.apis import export as ex
    from seg_sparse.sampling import sampling_layers

    random = any(not layer.is_dense and layer.sampler.name == "stochastic"
                 for _, layer in sampling_layers(model))
    if fmt == "onnx" and random:
        print("check: not compared (the model's stochastic masks are drawn by onnxruntime's "
              "random generator, not torch's)")
        return 0
    torch.manual_seed(0)
    reference = ex.eager_logits(model, example)
    torch.manual_seed(0)  # the same draws for a stochastic sampler
    if fmt == "pt2":
        with torch.no_grad():
            exported = ex.load_program(args.out).module()(example)
    else:
        exported = ex.run_onnx(args.out, example)
    diff = float((exported - reference).abs().max())
    scale = float(reference.abs().max()) or 1.0
    ok = exported.shape == reference.shape and diff <= 1e-4 * scale
    print(f"check: max |exported - eager| = {diff:.3g} (logits up to {scale:.3g}): "
          f"{'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1
