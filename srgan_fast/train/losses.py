"""Losses of the SRGAN phase besides VGG54 (``vgg.py``): adversarial, pixel and grid.

- ``adversarial_loss``: the paper's binary cross-entropy on D's logits.
- ``grid_loss``: what the generator adds locked to the output pixel grid. Its two x2 pixel
  shuffles give each of the 4x4 output phases its own filters, so an adversarial gradient easily
  turns into a checkerboard or hatching of period 2 or 4 that VGG54 (features at 1/16 resolution)
  does not see. The loss compares, per crop, the mean of the detail layer at each of the 16
  phases between SR and HR: natural detail has no preferred phase and averages out over a crop
  (HR's pattern is ~0.004 on [-1, 1]), a grid does not (the old 0.4 blend: 0.0043, SRResNet 0.0014).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

GRID = 4  # two x2 pixel shuffles: patterns of period 2 and 4 (eval.metrics.grid_ratio measures them)


def adversarial_loss(logits, real: bool):
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def detail(x: torch.Tensor) -> torch.Tensor:
    """x minus its 4x4 box average: the box has zeros at every grid frequency except DC, so a grid
    passes unchanged while smooth content (edges, gradients that differ by phase) is removed."""
    return x - F.avg_pool2d(F.pad(x, (1, 2, 1, 2), mode="replicate"), GRID, stride=1)


def grid_pattern(x: torch.Tensor) -> torch.Tensor:
    """(B, C, 16): each output phase's mean detail over the crop, minus the mean over phases."""
    phases = F.pixel_unshuffle(detail(x), GRID).float()          # (B, C*16, H/4, W/4)
    m = phases.mean((-2, -1)).view(x.shape[0], x.shape[1], GRID * GRID)
    return m - m.mean(-1, keepdim=True)


def grid_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """L1 between SR's and HR's grid patterns (HR's own is taken as the target, without a graph)."""
    with torch.no_grad():
        target = grid_pattern(hr)
    return F.l1_loss(grid_pattern(sr), target)
