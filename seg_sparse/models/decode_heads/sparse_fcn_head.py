"""mmseg's FCNHead whose convs compute only where learned masks sample (beyond the paper).

The layers, their names and mmseg's options are ``FCNHead``'s own, so its checkpoints load
(only ``sampling.*`` is new); the sampling itself is :class:`seg_sparse.sampling.HeadSampling`
(plain torch). docs/sparse_head.md.
"""

from __future__ import annotations

from typing import Any

from mmseg.models.decode_heads import FCNHead
from mmseg.registry import MODELS
from torch import Tensor, nn

from seg_sparse.sampling import HeadLayers, HeadSampling, SamplingOptions, check_head_layers

from ..backbones.sparse_resnet import uses_pretrained


@MODELS.register_module()
class SparseFCNHead(FCNHead):
    """FCNHead with stochastic feature sampling and interpolation in every conv.

    Each conv of ``convs`` and ``conv_cat`` (``concat_input``) gets a mask predicted from its
    own input; in training its output is interpolated where the mask did not sample, at
    inference (``execution`` 'auto' / 'sparse') it is computed only where it sampled. The 1x1
    classifier runs where its input was computed and its logits are interpolated (equal to
    classifying the interpolated features: the classifier is affine, the interpolation
    normalized). The probabilities enter ``loss_sparse`` of :class:`SparseEncoderDecoder`.

    Args:
        sampling: options of :class:`~seg_sparse.sampling.HeadSampling`: ``sampler``
            (``'stochastic'``, ``'deterministic'``, ``'relu'``, ``'dense'``: the plain
            FCNHead), ``grid_interval``, ``interp_window``, ``t0``, ``t_final``,
            ``max_iters``, ``execution``, ``loss_weight`` (the head's term in the sparsity
            loss relative to the backbone's blocks' mean; default 1.0).
        **kwargs: everything mmseg's ``FCNHead`` accepts (``conv_cfg`` None, ReLU
            activation, BN / SyncBN or no norm).
    """

    def __init__(self, sampling: dict | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for key, supported in (("conv_cfg", None), ("act_cfg", dict(type="ReLU"))):
            if getattr(self, key) != supported:
                raise ValueError(f"SparseFCNHead needs {key}={supported!r}, got "
                                 f"{key}={getattr(self, key)!r}")
        convs = self._sampled_convs()
        if not convs:
            raise ValueError("SparseFCNHead with num_convs=0 and concat_input=False has no conv "
                             "to sample")
        layers = self.head_layers()
        check_head_layers(layers)
        costs = [conv.weight.numel() for conv, _ in layers.convs]
        costs[-1] += self.conv_seg.weight.numel()  # the classifier runs at the last density
        sampling = dict(sampling or {})
        loss_weight = sampling.pop("loss_weight", 1.0)
        options, unknown = SamplingOptions.split(sampling)
        if unknown:
            raise TypeError(f"SparseFCNHead got unknown sampling option(s) {sorted(unknown)}; "
                            f"known: {[*SamplingOptions.names(), 'loss_weight']}")
        self.sampling = HeadSampling([conv.in_channels for conv, _ in layers.convs], costs,
                                     options, loss_weight=loss_weight)

    def _sampled_convs(self) -> list[nn.Module]:
        convs = list(self.convs) if self.num_convs > 0 else []
        return convs + ([self.conv_cat] if self.concat_input else [])

    def sampled_layer_names(self) -> list[str]:
        """Names (relative to the head) of the sampled convs, in forward order."""
        names = [f"convs.{i}" for i in range(self.num_convs)]
        return names + (["conv_cat"] if self.concat_input else [])

    def head_layers(self) -> HeadLayers:
        """The convs (conv, BN), the classifier and the masked path's modules (mmseg's
        ConvModules, ``cls_seg``), for the sampling code."""
        convs = self._sampled_convs()
        return HeadLayers([(m.conv, m.norm if m.with_norm else None) for m in convs],
                          self.concat_input, self.conv_seg, convs, self.cls_seg)

    def init_weights(self) -> None:
        """mmseg's init, then the sampling layers' own (unless loading pretrained weights)."""
        first_call = not self._is_init
        super().init_weights()
        if first_call and not uses_pretrained(self.init_cfg):
            self.sampling.reset_sampling_parameters()

    def forward(self, inputs: Any) -> Tensor:
        """The head's sampling runs the head: masked in training, executed at inference."""
        return self.sampling(self.head_layers(), self._transform_inputs(inputs), self)
