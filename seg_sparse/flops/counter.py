"""Measure per-conv MACs of a segmentor by forward hooks on a dummy input.

Hooks see the real output sizes, so stride, padding and dilation need no re-derivation. Each
conv is attributed to the backbone (and there to a bottleneck block and a role inside it) or to
the head (neck + decode head). :mod:`seg_sparse.flops.flops_report` turns the profile into GFLOPs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import torch
from torch import nn

from seg_sparse.sampling import HeadSampling, execution_mode, sampling_generators

from .flops_report import BlockFlops, Densities, FlopsReport, HeadDensities, HeadLayerFlops

#: Child names of a bottleneck block and the role they play in the FLOPs formula. Anything
#: else inside a block counts as "other" (dense).
_BLOCK_ROLES = {
    "conv1": "conv1",
    "conv2": "conv2",
    "conv3": "conv3",
    "conv2_offset": "offset",
    "downsample": "downsample",
    "mask1": "mask1",
    "mask2": "mask2",
}


def is_bottleneck(module: nn.Module) -> bool:
    """A residual bottleneck: has conv1, conv2 and conv3 submodules (mmseg's Bottleneck and
    seg_sparse's SparseBottleneck alike)."""
    return all(isinstance(getattr(module, n, None), nn.Module) for n in ("conv1", "conv2", "conv3"))


def is_sparse_block(module: nn.Module) -> bool:
    """A bottleneck with sampling machinery (mask predictors); the ``dense`` sampler has none."""
    return is_bottleneck(module) and any(
        isinstance(getattr(module, n, None), nn.Module) for n in ("mask1", "mask2")
    )


def _counted(module: nn.Module) -> bool:
    """Convs (incl. deformable convs, which own a >=3-D weight and a kernel_size) and linears.

    Only modules that own their weight count, so wrappers around a conv are not counted twice.
    """
    weight = module._parameters.get("weight")
    if weight is None:
        return False
    if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
        return True
    return weight.dim() >= 3 and hasattr(module, "kernel_size")


def _macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """MACs of one call with batch 1: weight size times the positions it is applied at."""
    weight = module._parameters["weight"]
    assert weight is not None
    if isinstance(module, nn.Linear):
        positions = out.numel() // out.shape[-1]
    elif isinstance(module, nn.modules.conv._ConvTransposeNd):
        positions = inp.numel() // inp.shape[1]
    else:
        positions = out.numel() // out.shape[1]
    return weight.numel() * positions


def _block_role(path: str) -> str:
    head, _, rest = path.partition(".")
    if rest.endswith("conv_offset"):  # offset conv inside an mmcv-style DCN pack
        return "offset"
    return _BLOCK_ROLES.get(head, "other")


def _iter_blocks(backbone: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Outermost bottleneck blocks of the backbone, in forward order of definition."""
    taken: list[str] = []
    for name, module in backbone.named_modules():
        if any(name.startswith(prefix + ".") for prefix in taken):
            continue
        if name and is_bottleneck(module):
            taken.append(name)
            yield name, module


class _Recorder:
    """Forward hooks collecting MACs per conv module and output shapes of conv1 / conv3."""

    def __init__(self) -> None:
        self.macs: dict[nn.Module, int] = defaultdict(int)
        self.shapes: dict[nn.Module, tuple[int, ...]] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def attach(self, module: nn.Module) -> None:
        for m in module.modules():
            if _counted(m):
                self._handles.append(m.register_forward_hook(self._hook))

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if not isinstance(output, torch.Tensor):  # e.g. a DCN returning extras
            output = output[0]
        self.macs[module] += _macs(module, inputs[0], output)
        self.shapes[module] = tuple(output.shape)

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def total(self, module: nn.Module | None) -> int:
        if module is None:
            return 0
        return sum(self.macs.get(m, 0) for m in module.modules())


def _output_shape(recorder: _Recorder, conv: nn.Module) -> tuple[int, ...] | None:
    """(1, C, H, W) of ``conv``'s output (its last recorded leaf) in the recorded forward."""
    leaves = [m for m in conv.modules() if m in recorder.shapes]
    return tuple(recorder.shapes[leaves[-1]]) if leaves else None


def _interp_cost(recorder: _Recorder, conv: nn.Module, interp: nn.Module) -> int:
    """k x k single-output conv over the channels of ``conv``'s output at its resolution, k the
    window of the block's interpolation module ``interp``."""
    shape = _output_shape(recorder, conv)
    if shape is None:
        return 0
    _, c, h, w = shape
    return int(interp.window) ** 2 * c * h * w


def _positions(recorder: _Recorder, conv: nn.Module) -> int:
    """Output positions (batch 1) of ``conv`` in the recorded forward."""
    shape = _output_shape(recorder, conv)
    return 0 if shape is None else shape[2] * shape[3]


def _predictor_macs(block: nn.Module, recorder: _Recorder) -> dict[str, int]:
    """MACs of the mask predictors, which run as one fused GEMM rather than module calls
    (:func:`seg_sparse.sampling.predictors.paired_mask_logits`): weight size x mask positions."""
    macs = {}
    for role, predictor, conv in (("mask1", "mask1", block.conv1), ("mask2", "mask2", block.conv3)):
        module = getattr(block, predictor, None)
        if isinstance(module, nn.Module) and module not in recorder.macs:
            macs[role] = module.conv.weight.numel() * _positions(recorder, conv)
    return macs


def _profile_block(name: str, block: nn.Module, recorder: _Recorder) -> BlockFlops:
    macs: dict[str, int] = defaultdict(int)
    for path, m in block.named_modules():
        if m in recorder.macs:
            macs[_block_role(path)] += recorder.macs[m]
    sparse = is_sparse_block(block)
    if sparse:
        for role, value in _predictor_macs(block, recorder).items():
            macs[role] += value
    return BlockFlops(
        name=name,
        sparse=sparse,
        macs=dict(macs),
        interp1=_interp_cost(recorder, block.conv1, block.interp1) if sparse else 0,
        interp2=_interp_cost(recorder, block.conv3, block.interp2) if sparse else 0,
    )


def _profile_head(head: nn.Module, recorder: _Recorder) -> tuple[HeadLayerFlops, ...]:
    """Per sampled conv of a decode head that samples (``SparseFCNHead``: ``sampling``, a
    :class:`HeadSampling`, ``head_layers()`` and ``sampled_layer_names()``); () otherwise."""
    sampling = getattr(head, "sampling", None)
    if not isinstance(sampling, HeadSampling) or sampling.is_dense:
        return ()
    layers = head.head_layers()
    names = head.sampled_layer_names()
    profiled = []
    for i, ((conv, _), name) in enumerate(zip(layers.convs, names)):
        last = i == len(layers.convs) - 1
        _, _, h, w = recorder.shapes[conv]
        channels = layers.classifier.out_channels if last else conv.out_channels
        k = sampling.interps[i].window
        profiled.append(HeadLayerFlops(
            name=name,
            macs=recorder.macs[conv] + (recorder.macs[layers.classifier] if last else 0),
            mask_macs=sampling.masks[i].conv.weight.numel() * h * w,  # fused, not a module call
            interp=k * k * channels * h * w,
        ))
    return tuple(profiled)


def _split_segmentor(model: nn.Module) -> tuple[nn.Module, list[nn.Module]]:
    """(backbone, [neck, decode_head]) of an mmseg segmentor; a bare backbone has no head."""
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        return model, []
    heads = [getattr(model, n, None) for n in ("neck", "decode_head")]
    return backbone, [h for h in heads if isinstance(h, nn.Module)]


@torch.no_grad()
def count_flops(
    model: nn.Module,
    input_shape: tuple[int, int],
    densities: Densities | None = None,
    in_channels: int = 3,
    head_densities: HeadDensities | None = None,
) -> FlopsReport:
    """MACs of ``model`` (an mmseg segmentor, or a bare backbone) at input ``(H, W)``.

    Runs backbone -> neck -> decode head once in eval mode on a zero image of batch 1 (the
    auxiliary head is not run, as at inference), restoring train mode, the global RNG and the
    state of every generator the sampling layers draw from (``set_sampling_generator``)
    afterwards, so a count between two seeded draws does not change the second.
    ``densities`` maps block names (relative to the backbone, e.g. ``layer3.2``) to mask
    densities ``(d1, d2)`` and adds the executed ("sparse") figures; for a decode head that
    samples, ``head_densities`` (head conv name -> density) does the same.
    """
    h, w = (int(v) for v in input_shape)
    if h <= 0 or w <= 0:
        raise ValueError(f"input shape must be positive (H, W), got {input_shape!r}")
    backbone, heads = _split_segmentor(model)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    recorder = _Recorder()
    for part in [backbone, *heads]:
        recorder.attach(part)
    was_training = model.training
    generators = sampling_generators(model)
    generator_states = [g.get_state() for g in generators]
    model.eval()
    try:
        # the hooks count the masked computation's convs (the executed paths call no modules)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
                execution_mode(model, "masked"):
            x = torch.zeros(1, in_channels, h, w, device=device, dtype=dtype)
            feats = backbone(x)
            for head in heads:
                feats = head(feats)
    finally:
        recorder.detach()
        model.train(was_training)
        for generator, state in zip(generators, generator_states):
            generator.set_state(state)

    blocks = tuple(_profile_block(n, b, recorder) for n, b in _iter_blocks(backbone))
    in_blocks = sum(recorder.total(b) for _, b in _iter_blocks(backbone))
    report = FlopsReport(
        input_shape=(h, w),
        backbone_other=recorder.total(backbone) - in_blocks,
        head=sum(recorder.total(m) for m in heads),
        blocks=blocks,
        head_layers=tuple(layer for head in heads for layer in _profile_head(head, recorder)),
    )
    if densities is None and head_densities is None:
        return report
    return report.with_densities(densities, head_densities)
