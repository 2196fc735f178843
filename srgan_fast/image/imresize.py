"""MATLAB-compatible bicubic ``imresize`` (antialiased when downscaling).

The standard SR benchmarks' LR images were made with MATLAB's ``imresize(hr, 1/4, 'bicubic')``;
PyTorch's bicubic interpolation differs (no antialiasing by default, other boundary handling), so
PSNR figures computed with it do not match the literature. This module reproduces MATLAB:
cubic kernel a=-0.5, the kernel stretched by 1/scale when shrinking, symmetric boundary mirroring,
and (for uint8 input) rounding to uint8. The resize is a dense matrix product per axis, which is
exact and fast enough for benchmark-sized images.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def _cubic(x: torch.Tensor) -> torch.Tensor:
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def resize_matrix(in_len: int, out_len: int, scale: float) -> torch.Tensor:
    """(out_len, in_len) float64 matrix M such that out = M @ in along one axis."""
    kernel_width = 4.0 / scale if scale < 1 else 4.0
    out = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = out / scale + 0.5 * (1 - 1 / scale)  # MATLAB's 1-based input coordinate
    left = torch.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    dist = u[:, None] - idx
    w = scale * _cubic(dist * scale) if scale < 1 else _cubic(dist)
    w = w / w.sum(dim=1, keepdim=True)
    # Symmetric boundary: ..., 2, 1, 1, 2, ..., n, n, n-1, ... (1-based) as MATLAB does.
    period = 2 * in_len
    i0 = (idx.long() - 1) % period
    i0 = torch.where(i0 >= in_len, period - 1 - i0, i0)
    mat = torch.zeros(out_len, in_len, dtype=torch.float64)
    mat.scatter_add_(1, i0, w)
    return mat


def imresize(img, scale: float | None = None, size: tuple[int, int] | None = None):
    """Bicubic resize like MATLAB. ``img``: HWC/HW uint8 or float numpy array, or CHW/NCHW tensor.

    Give ``scale`` (e.g. 0.25) or the output ``size`` as (height, width). uint8 numpy input is
    returned as uint8 (rounded, clipped); float input keeps its dtype and is not clipped.
    """
    if isinstance(img, np.ndarray):
        is_uint8 = img.dtype == np.uint8
        t = torch.from_numpy(np.require(img, requirements=["C", "W"])).to(torch.float64)
        t = t.permute(2, 0, 1) if t.ndim == 3 else t[None]
        out = _resize_chw(t, scale, size, round_between=is_uint8)
        out = out.permute(1, 2, 0) if img.ndim == 3 else out[0]
        if is_uint8:
            return out.round().clamp(0, 255).to(torch.uint8).numpy()
        return out.numpy().astype(img.dtype)
    dtype = img.dtype
    return _resize_chw(img.to(torch.float64), scale, size).to(dtype)


def _resize_chw(t: torch.Tensor, scale, size, round_between: bool = False) -> torch.Tensor:
    h, w = t.shape[-2:]
    if size is None:
        if scale is None:
            raise ValueError("imresize needs scale or size")
        size = (int(math.ceil(h * scale)), int(math.ceil(w * scale)))
        sh = sw = scale
    else:
        sh, sw = size[0] / h, size[1] / w
    mh = resize_matrix(h, size[0], sh)
    mw = resize_matrix(w, size[1], sw)
    # MATLAB resizes the dimension with the smaller scale first (rows on a tie) and, for uint8
    # images, rounds to uint8 after each pass; both matter for bit-compatible LR images.
    first, second = ((lambda x: mh @ x), (lambda x: x @ mw.T))
    if sw < sh:
        first, second = second, first
    mid = first(t)
    if round_between:
        mid = mid.round().clamp(0, 255)
    return second(mid)


def modcrop(img: np.ndarray, scale: int = 4) -> np.ndarray:
    """Crop an HWC/HW array so height and width are multiples of ``scale`` (top-left kept)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]
