"""SRGAN networks (Ledig et al., CVPR 2017): generator (SRResNet), discriminator, BN folding.

Public convention: the generator takes RGB NCHW float in [0, 1] and ``forward`` returns [0, 1].
``forward(x, raw=True)`` returns the last conv's output before the output mapping; training uses
it so the clamp never cuts gradients.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

# How the last conv's output maps to [0, 1]. Ours is trained against HR scaled to [-1, 1] as in
# the paper; the other two exist to import public checkpoints (see checkpoints.py).
OUTPUT_MAPPINGS = ("pm1", "tanh", "unit")
# What follows the conv after the residual blocks: BatchNorm (the paper, ours, Lornatang, leftthomas
# HEAD) or a PReLU (leftthomas/SRGAN's released netG_epoch_* checkpoints).
BODY_KINDS = ("bn", "prelu")

SCALE = 4
# Multiply-adds per LR pixel of the B=16, 64-channel generator (DESIGN.md §2); used for FLOP/s.
MACS_PER_LR_PIXEL = 2_218_176


class ResidualBlock(nn.Module):
    def __init__(self, channels: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


class UpsampleBlock(nn.Module):
    """conv 64->256, PixelShuffle(2), PReLU: doubles the resolution."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.prelu = nn.PReLU()

    def forward(self, x):
        return self.prelu(self.shuffle(self.conv(x)))


class Generator(nn.Module):
    def __init__(self, num_blocks: int = 16, channels: int = 64, output_mapping: str = "pm1",
                 body: str = "bn"):
        super().__init__()
        if output_mapping not in OUTPUT_MAPPINGS:
            raise ValueError(f"output_mapping must be one of {OUTPUT_MAPPINGS}, got {output_mapping!r}")
        if body not in BODY_KINDS:
            raise ValueError(f"body must be one of {BODY_KINDS}, got {body!r}")
        self.num_blocks, self.channels, self.output_mapping = num_blocks, channels, output_mapping
        self.body = body
        self.head = nn.Conv2d(3, channels, 9, padding=4)
        self.head_prelu = nn.PReLU()
        self.blocks = nn.Sequential(*[ResidualBlock(channels) for _ in range(num_blocks)])
        self.body_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.body_bn = nn.BatchNorm2d(channels) if body == "bn" else nn.Identity()
        self.body_prelu = nn.PReLU() if body == "prelu" else None
        self.upsample = nn.Sequential(UpsampleBlock(channels), UpsampleBlock(channels))
        self.tail = nn.Conv2d(channels, 3, 9, padding=4)

    def forward_raw(self, x):
        h = self.head_prelu(self.head(x))
        b = self.body_bn(self.body_conv(self.blocks(h)))
        h = h + (b if self.body_prelu is None else self.body_prelu(b))
        return self.tail(self.upsample(h))

    def map_output(self, raw):
        """Raw tail output -> [0, 1] image, without clamping."""
        if self.output_mapping == "pm1":
            return (raw + 1) * 0.5
        if self.output_mapping == "tanh":
            return (torch.tanh(raw) + 1) * 0.5
        return raw

    def forward(self, x, raw: bool = False):
        """[0, 1] image, or with ``raw=True`` the unmapped output (training, DDP-friendly)."""
        out = self.forward_raw(x)
        return out if raw else self.map_output(out).clamp(0, 1)


class Discriminator(nn.Module):
    """8 conv layers (64..512 channels, stride 2 on every second), LeakyReLU(0.2), dense 1024, dense 1.

    Returns logits: the sigmoid lives in the loss (BCEWithLogits) for numerical stability.
    Adaptive pooling before the dense layers lets it take any crop size (the paper uses 96x96).
    """

    def __init__(self, channels: int = 64):
        super().__init__()
        layers, cin = [], 3
        widths = [channels, channels, channels * 2, channels * 2, channels * 4, channels * 4,
                  channels * 8, channels * 8]
        for i, cout in enumerate(widths):
            layers.append(nn.Conv2d(cin, cout, 3, stride=1 + i % 2, padding=1))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(6)  # 96 / 16 = 6: identity at the paper's crop size
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(cin * 36, 1024), nn.LeakyReLU(0.2), nn.Linear(1024, 1))

    def forward(self, x):
        """x: images in [-1, 1]."""
        return self.classifier(self.pool(self.features(x)))


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode BatchNorm into the conv before it, in place."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    if conv.bias is None:
        conv.bias = nn.Parameter(torch.zeros_like(bn.running_mean))
    conv.bias.copy_((bias - bn.running_mean) * scale + bn.bias)


@torch.no_grad()
def fold_bn(generator: Generator) -> Generator:
    """Return an eval-mode copy of ``generator`` with every BatchNorm folded into its conv.

    The result computes the same function as ``generator.eval()`` (up to rounding) and has no
    batch dependence, which is what makes exact tiling and ONNX export simple.
    """
    g = copy.deepcopy(generator).eval().float()
    for block in g.blocks:
        _fold(block.conv1, block.bn1)
        _fold(block.conv2, block.bn2)
        block.bn1, block.bn2 = nn.Identity(), nn.Identity()
    if isinstance(g.body_bn, nn.BatchNorm2d):
        _fold(g.body_conv, g.body_bn)
        g.body_bn = nn.Identity()
    return g


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def receptive_field_radius(generator: Generator) -> int:
    """Largest distance, in LR pixels, from an output pixel's LR location to an input it depends on.

    Walks the layers backwards keeping the interval of positions an output pixel reads, for every
    sub-pixel phase of the 4x output, so the floor() of each PixelShuffle is accounted for exactly.
    Tiles that overlap by this many LR pixels reproduce the whole-frame result.
    """
    def k(conv):  # half-width of a square, unit-dilation conv
        return conv.kernel_size[0] // 2

    # (radius, shuffle) from output back to input; shuffle=True means "divide positions by 2".
    steps = [(k(generator.tail), False)]
    for up in reversed(list(generator.upsample)):
        steps += [(0, True), (k(up.conv), False)]
    steps.append((k(generator.body_conv), False))
    for block in reversed(list(generator.blocks)):
        steps += [(k(block.conv2), False), (k(block.conv1), False)]
    steps.append((k(generator.head), False))

    scale = 2 ** len(generator.upsample)
    radius = 0
    for phase in range(scale):
        lo = hi = phase
        for r, shuffle in steps:
            lo, hi = (lo // 2, hi // 2) if shuffle else (lo - r, hi + r)
        radius = max(radius, -lo, hi)
    return radius


def flops_per_lr_pixel(generator: Generator) -> int:
    """Multiply-adds per LR pixel, from the layer list (matches MACS_PER_LR_PIXEL for the default)."""
    total, area = 0, 1
    convs = [generator.head] + [c for b in generator.blocks for c in (b.conv1, b.conv2)]
    convs.append(generator.body_conv)
    for conv in convs:
        total += conv.in_channels * conv.out_channels * math.prod(conv.kernel_size)
    for up in generator.upsample:
        total += area * up.conv.in_channels * up.conv.out_channels * math.prod(up.conv.kernel_size)
        area *= 4
    total += area * generator.tail.in_channels * generator.tail.out_channels * math.prod(
        generator.tail.kernel_size)
    return total
