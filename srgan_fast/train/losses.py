"""Losses of the SRGAN phase besides VGG54 (``vgg.py``): adversarial and grid.

- ``adversarial_loss``: the paper's binary cross-entropy on D's logits.
- ``grid_loss``: what the generator adds locked to the output pixel grid. Its two x2 pixel
  shuffles give each of the 4x4 output phases its own filters, so an adversarial gradient easily
  turns into a checkerboard or hatching of period 2 or 4 that VGG54 (features at 1/16 resolution)
  does not see. The loss compares, per crop, the mean of the detail layer at each of the 16
  phases (``eval.metrics.grid_pattern``) between SR and HR: natural detail has no preferred phase
  and averages out over a crop, a grid does not.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..eval.metrics import grid_pattern


def adversarial_loss(logits, real: bool):
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def grid_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """L1 between SR's and HR's grid patterns (HR's own is the target, without a graph)."""
    with torch.no_grad():
        target = grid_pattern(hr)
    return F.l1_loss(grid_pattern(sr), target)
