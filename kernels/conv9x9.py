"""The generator's 9x9 convs: head (3 -> C, + PReLU) and tail (C -> 3, + output mapping).

The head reads the engine's NCHW float32 input through an NHWC view of it (``lr.permute(0, 2,
3, 1)``) and casts while loading; its K dimension is the 243 (tap, channel) pairs flattened and
padded to a multiple of 32, so ``tl.dot`` sees full K blocks without padding each tap's 3
channels to 16. The tail maps its raw output to [0, 1] (``Generator.map_output`` + clamp) in the
epilogue and can store straight into an NCHW float32 tensor through ``out``.
"""
from __future__ import annotations

import torch

from .conv2d import PackedConv, conv2d_nhwc, conv2d_nhwc_reference


def head_conv_prelu(x: torch.Tensor, layer: PackedConv, out: torch.Tensor | None = None) -> torch.Tensor:
    """prelu(conv(x) + bias) for the KxK head; ``x`` is [N, H, W, 3] with any strides and dtype."""
    if layer.alpha is None or layer.shuffle:
        raise ValueError("head_conv_prelu needs a layer packed with PReLU slopes and no shuffle")
    return conv2d_nhwc(x, layer, out=out)


def head_conv_prelu_reference(x, weight, bias, alpha):
    return conv2d_nhwc_reference(x, weight, bias, alpha=alpha)


def tail_conv_map(x: torch.Tensor, layer: PackedConv, mapping: str | None = "pm1",
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """mapping(conv(x) + bias) clamped to [0, 1] (``mapping`` None: raw, unclamped).

    ``out`` may be any [N, H, W, 3] view, e.g. ``torch.empty(N, 3, H, W).permute(0, 2, 3, 1)``
    to get an NCHW float32 image without a separate layout pass.
    """
    if layer.alpha is not None or layer.shuffle:
        raise ValueError("tail_conv_map takes a layer packed without PReLU or shuffle")
    return conv2d_nhwc(x, layer, out_map=mapping, out=out)


def tail_conv_map_reference(x, weight, bias, mapping="pm1"):
    return conv2d_nhwc_reference(x, weight, bias, out_map=mapping)
