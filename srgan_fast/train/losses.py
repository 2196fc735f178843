"""Losses: pixel MSE, the paper's VGG54 content loss, and the adversarial loss.

VGG19 ImageNet weights cannot be downloaded by this package. ``VGG54`` defines VGG19's feature
layers here and loads a local torchvision-format file (``vgg19-dcbb9e9d.pth`` or any state dict
with ``features.N.weight`` keys), read with ``weights_only=True``.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SrganError

# VGG19 "E" configuration; "M" is a 2x2 max-pool.
_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"]
# relu5_4 (phi_5,4 in the paper: after the 4th conv, before the 5th max-pool) is features[35].
_RELU5_4 = 36
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_features() -> nn.Sequential:
    layers, cin = [], 3
    for v in _VGG19:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    return nn.Sequential(*layers)


class VGG54(nn.Module):
    """MSE between VGG19 relu5_4 feature maps, scaled by 1/12.75 as in the paper."""

    def __init__(self, weights_path):
        super().__init__()
        path = Path(weights_path)
        if not path.is_file():
            raise SrganError(f"VGG19 weights not found at {path}: give a local torchvision "
                             f"vgg19 state dict with --vgg, or train with the MSE content loss")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line message
            raise SrganError(f"{path}: not a readable torch state dict ({e.__class__.__name__})") from None
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        net = vgg19_features()
        try:
            net.load_state_dict(feats)
        except RuntimeError as e:
            raise SrganError(f"{path}: not a VGG19 feature state dict ({str(e).splitlines()[0]})") from None
        self.features = net[:_RELU5_4].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, sr01, hr01):
        """Both in [0, 1]."""
        f = self.features((torch.cat([sr01, hr01]) - self.mean) / self.std)
        fs, fh = f.chunk(2)
        return F.mse_loss(fs, fh.detach()) / 12.75


def adversarial_loss(logits, real: bool):
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)
