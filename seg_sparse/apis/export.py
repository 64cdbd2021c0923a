"""Export for deployment: ``torch.export`` programs and ONNX models of a segmentor
(``seg-sparse export``, docs/deployment.md).

What is exported is :class:`SegmentorLogits`: a normalized image batch (B, 3, H, W) in, the
logits at the input size (B, num_classes, H, W) out (mmseg's ``encode_decode``, whole-image
inference). Exporting runs every sampling layer on its masked path (the executor's row sets
have data-dependent sizes; :func:`~seg_sparse.sampling.execution.select_executor`), so

* the dense twin (:func:`dense_twin_config`) exports as plain convolutions plus the
  deformable convolution, one ``seg_sparse.deform_conv2d`` node (:mod:`seg_sparse.ops.library`)
  in a ``torch.export`` program and one ONNX ``DeformConv`` (opset 19) in an ONNX model;
* the sampled model exports its masked computation: the mask predictors, the random draws
  (``rand_like`` on the program's global RNG; ``RandomUniformLike`` in ONNX), the grid prior
  and the interpolation -- every convolution still runs on the full map, so an exported
  sampled model saves no time; the sparse (gathered) path does not export.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import torch
from torch import nn

from seg_sparse.errors import UserInputError


class ExportError(UserInputError, RuntimeError):
    """A model or format that cannot be exported (the message says why)."""


class SegmentorLogits(nn.Module):
    """A segmentor as one tensor function: image batch -> logits at the input size."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        size = tuple(inputs.shape[-2:])
        # one meta for the batch: mmseg resizes every image to the first's img_shape, and a
        # list as long as the batch would fix the batch size in an exported program
        return self.segmentor.encode_decode(inputs, [dict(img_shape=size, ori_shape=size,
                                                          pad_shape=size)])


def dense_twin_config(cfg: Any) -> Any:
    """A copy of a sampling model's config with ``sampler='dense'`` in the backbone and in a
    ``SparseFCNHead``'s sampling: the same network and parameter names, no sampling layers."""
    dense = copy.deepcopy(cfg)
    dense.model.backbone.sampler = "dense"
    head = dense.model.get("decode_head", {})
    if head.get("type") == "SparseFCNHead":
        head["sampling"] = {**(head.get("sampling") or {}), "sampler": "dense"}
    return dense


def _wrap(model: nn.Module) -> SegmentorLogits:
    if not hasattr(model, "encode_decode"):
        raise ExportError(f"{type(model).__name__} is not a segmentor (no encode_decode); "
                          "seg-sparse export exports segmentation models")
    return SegmentorLogits(model).eval()


def export_program(model: nn.Module, example: torch.Tensor,
                   dynamic: bool = False) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` (a segmentor, put in eval mode) on ``example`` inputs;
    ``dynamic``: batch, height and width stay symbolic where the model allows it."""
    wrapped = _wrap(model.eval())
    shapes = None
    if dynamic:
        auto = torch.export.Dim.AUTO
        shapes = {"inputs": {0: auto, 2: auto, 3: auto}}
    with torch.no_grad():
        return torch.export.export(wrapped, (example,), dynamic_shapes=shapes)


def save_program(program: torch.export.ExportedProgram, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.export.save(program, path)
    return path


def load_program(path: str) -> torch.export.ExportedProgram:
    """An exported program saved by :func:`save_program` (``seg_sparse.ops`` registers the
    deformable convolution's op first)."""
    import seg_sparse.ops  # noqa: F401  (seg_sparse::deform_conv2d)

    return torch.export.load(path)


def _onnx_deform_conv(input, offset, weight, bias, stride, padding, dilation, mask):
    """``seg_sparse::deform_conv2d`` as ONNX ``DeformConv`` (opset 19; same layouts)."""
    from onnxscript import opset19 as op

    kh, kw = weight.shape[2], weight.shape[3]
    return op.DeformConv(
        input, weight, offset, bias, mask, kernel_shape=[kh, kw], strides=list(stride),
        pads=[padding[0], padding[1], padding[0], padding[1]], dilations=list(dilation),
        group=input.shape[1] // weight.shape[1], offset_group=offset.shape[1] // (2 * kh * kw))


def export_onnx(model: nn.Module, example: torch.Tensor, path: str) -> str:
    """ONNX (opset 19) of ``model`` on ``example`` inputs, written to ``path``; needs the
    ``onnx`` extra (onnx, onnxscript; onnxruntime to run it)."""
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs onnx and onnxscript: pip install -e '.[onnx]'"
                          ) from None
    wrapped = _wrap(model.eval())
    table = {torch.ops.seg_sparse.deform_conv2d.default: _onnx_deform_conv}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with torch.no_grad():
        program = torch.onnx.export(wrapped, (example,), dynamo=True, opset_version=19,
                                    custom_translation_table=table, verbose=False)
    program.save(path)
    return path


def run_onnx(path: str, inputs: torch.Tensor) -> torch.Tensor:
    """Logits of the ONNX model at ``path`` by onnxruntime on CPU."""
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("running ONNX models needs onnxruntime: pip install -e '.[onnx]'"
                          ) from None
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return torch.from_numpy(session.run(None, {name: inputs.cpu().numpy()})[0])


def eager_logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The eager reference of an exported model: its masked path, as exported."""
    from seg_sparse.sampling import execution_mode

    with torch.no_grad(), execution_mode(model, "masked"):
        return _wrap(model.eval())(inputs)
