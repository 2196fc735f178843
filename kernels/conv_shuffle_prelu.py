"""conv3x3 (C -> 4C) + PixelShuffle(2) + PReLU in one kernel: the upsample blocks.

The epilogue stores each conv output at its shuffled location (``pack_conv(..., shuffle=True)``
reorders the output channels so each block of them is one sub-pixel's contiguous channel run),
so the 4C-channel tensor is never written to memory. Tensors are NHWC: [N, H, W, C] in,
[N, 2H, 2W, C] out.
"""
from __future__ import annotations

import torch

from .conv2d import PackedConv, conv2d_nhwc, conv2d_nhwc_reference


def conv3x3_shuffle_prelu(x: torch.Tensor, layer: PackedConv, out: torch.Tensor | None = None) -> torch.Tensor:
    """prelu(pixel_shuffle(conv3x3(x) + bias, 2)); ``layer`` from ``pack_conv(w, b, alpha, shuffle=True)``."""
    if layer.ksize != 3 or not layer.shuffle or layer.alpha is None:
        raise ValueError("conv3x3_shuffle_prelu needs a 3x3 layer packed with shuffle=True and alpha")
    return conv2d_nhwc(x, layer, out=out)


def conv3x3_shuffle_prelu_reference(x, weight, bias, alpha):
    """alpha: PReLU slopes of the shuffled output (1 or C values), as in ``nn.PReLU``."""
    return conv2d_nhwc_reference(x, weight, bias, alpha=alpha, shuffle=True)
