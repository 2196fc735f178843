"""Pixel arithmetic shared by reading, writing and metrics: colour conversions and the one
[0, 1] -> integer quantization (rounding, clamped)."""
from __future__ import annotations

import torch


def rgb_to_gray(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma in [0, 1] (the weights Pillow uses for 'L')."""
    r, g, b = rgb[..., 0, :, :], rgb[..., 1, :, :], rgb[..., 2, :, :]
    return 0.299 * r + 0.587 * g + 0.114 * b


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """Y of BT.601 YCbCr (studio swing, 16..235) in [0, 255] from RGB in [0, 1], as MATLAB's rgb2ycbcr."""
    r, g, b = rgb[..., 0, :, :], rgb[..., 1, :, :], rgb[..., 2, :, :]
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def quantize(t: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """[0, 1] float -> uint8 / 16-bit integers (int32 tensor) with rounding; float samples are clamped."""
    t = t.clamp(0, 1)
    if bits == 32:
        return t
    if bits == 16:
        return (t * 65535.0).round().to(torch.int32)
    return (t * 255.0).round().to(torch.uint8)


def to_uint8(t: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> uint8 with rounding (the one place this quantization happens)."""
    return quantize(t, 8)
