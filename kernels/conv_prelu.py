"""conv3x3 + folded-BN bias + PReLU, and conv3x3 + bias + residual add: the residual blocks.

Every residual block is ``x + conv2(prelu(conv1(x)))`` with BatchNorm folded into both convs:
``conv3x3_prelu`` is the first conv, ``conv3x3_add`` the second with the skip added in the
epilogue (also the body conv with the global skip from the head). Tensors are NHWC.
"""
from __future__ import annotations

import torch

from .conv2d import PackedConv, conv2d_nhwc, conv2d_nhwc_reference


def _check(p: PackedConv, prelu: bool) -> None:
    if p.ksize != 3 or p.shuffle:
        raise ValueError(f"expected a packed 3x3 conv without shuffle, got {p.ksize}x{p.ksize}")
    if prelu and p.alpha is None:
        raise ValueError("conv3x3_prelu needs a layer packed with PReLU slopes (alpha)")
    if not prelu and p.alpha is not None:
        raise ValueError("conv3x3_add takes a layer packed without PReLU")


def conv3x3_prelu(x: torch.Tensor, layer: PackedConv, out: torch.Tensor | None = None,
                  residual: torch.Tensor | None = None) -> torch.Tensor:
    """prelu(conv3x3(x) + bias) [+ residual] on NHWC ``x``; ``layer`` from
    ``pack_conv(w, b, alpha=...)``. The residual form is the body conv of leftthomas/SRGAN's
    released generator (PReLU instead of BatchNorm before the global skip)."""
    _check(layer, prelu=True)
    return conv2d_nhwc(x, layer, residual=residual, out=out)


def conv3x3_prelu_reference(x, weight, bias, alpha, residual=None):
    return conv2d_nhwc_reference(x, weight, bias, alpha=alpha, residual=residual)


def conv3x3_add(x: torch.Tensor, layer: PackedConv, residual: torch.Tensor,
                out: torch.Tensor | None = None) -> torch.Tensor:
    """conv3x3(x) + bias + residual on NHWC tensors; ``residual`` has the output's shape."""
    _check(layer, prelu=False)
    return conv2d_nhwc(x, layer, residual=residual, out=out)


def conv3x3_add_reference(x, weight, bias, residual):
    return conv2d_nhwc_reference(x, weight, bias, residual=residual)
