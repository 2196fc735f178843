"""Losses of the SRGAN phase besides VGG54 (``vgg.py``): adversarial and grid.

- ``adversarial_loss``: the paper's binary cross-entropy on D's logits.
- ``d_loss``/``g_adv_loss``: the same for either discriminator: the paper's ("bce", D asks "is
  this real?") or the relativistic average one of ESRGAN ("ragan", D asks "is this more real than
  the average fake?"), whose generator loss has a gradient from the real crops too, so G is
  pulled towards real texture, not only away from what D dislikes.
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


GANS = ("bce", "ragan")


def d_loss(d_real, d_fake, gan: str = "bce"):
    """Discriminator loss from its logits on real (HR) and fake (SR, detached) crops."""
    if gan == "ragan":
        return (adversarial_loss(d_real - d_fake.mean(), True)
                + adversarial_loss(d_fake - d_real.mean(), False)) / 2
    return adversarial_loss(d_real, True) + adversarial_loss(d_fake, False)


def g_adv_loss(d_fake, d_real=None, gan: str = "bce"):
    """Generator's adversarial loss from D's logits on its SR crops (with gradient) and, for
    "ragan", on the real crops (no gradient needed: they do not depend on G)."""
    if gan == "ragan":
        d_real = d_real.detach()
        return (adversarial_loss(d_real - d_fake.mean(), False)
                + adversarial_loss(d_fake - d_real.mean(), True)) / 2
    return adversarial_loss(d_fake, True)


def grid_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """L1 between SR's and HR's grid patterns (HR's own is the target, without a graph)."""
    with torch.no_grad():
        target = grid_pattern(hr)
    return F.l1_loss(grid_pattern(sr), target)
