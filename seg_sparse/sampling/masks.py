"""Mask predictor: the per-position logit that decides where a block computes."""

from __future__ import annotations

import torch
from torch import nn

#: Initial bias of every mask predictor: sigmoid(3) = 0.95, so training starts almost dense.
MASK_INIT_BIAS = 3.0


class MaskPredictor(nn.Module):
    """3x3 conv (padding 1, no dilation) from the block input to one logit per output position.

    Weights start at 0 and the bias at :data:`MASK_INIT_BIAS`, so every position starts with
    p = 0.95 and the model begins as (almost) the pretrained dense network. The conv is never
    dilated, also in dilated blocks: the authors' predictors look at the 3x3 neighbourhood of
    each position for both masks.

    Args:
        in_channels: channels of the block input.
        stride: stride of the layer whose output the mask gates (1 for conv1, the block's
            stride for conv2).
    """

    def __init__(self, in_channels: int, stride: int = 1) -> None:
        super().__init__()
        if in_channels <= 0 or stride <= 0:
            raise ValueError(
                f"MaskPredictor needs positive in_channels/stride, got "
                f"in_channels={in_channels}, stride={stride}"
            )
        self.conv = nn.Conv2d(in_channels, 1, kernel_size=3, stride=stride, padding=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Zero weights, bias 3 (call again after a framework-wide conv initialisation)."""
        nn.init.zeros_(self.conv.weight)
        nn.init.constant_(self.conv.bias, MASK_INIT_BIAS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits z of shape (B, 1, H', W')."""
        return self.conv(x)
