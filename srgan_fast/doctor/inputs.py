"""The doctor's pictures: real pixels shipped inside the package, so a pip-installed doctor checks
parity anywhere without the test data or the SR datasets.

``srgan_fast/data/`` (``fp16_range.DATA``, shared with the fp16 range check of ``--precision
auto``) holds two crops of the LR test images (tests/data/butterfly_lr.png and baby_lr.png,
Set5/Set14 LR), at odd sizes on purpose: odd heights and widths are where padding, pixel
shuffle and tiling off-by-ones show. The tiling frame is the butterfly crop beside its mirror
image, wide enough that the inner tiles really are cut out of the frame (a tile plus twice the
40-pixel overlap is narrower than the frame); speed is timed on a seeded random frame, since
the time does not depend on the content.
"""
from __future__ import annotations

import torch

from srgan_fast.fp16_range import CROPS, DATA

# The Triton interpreter does ~0.2 GFLOP/s: a 7x9 crop is 0.28 GFLOP through the generator, ~1.5 s a call.
TINY = (7, 9)
TILING_ROWS, TILING_TILE = 31, 31  # frame 31 x 121 LR pixels, cut in 31-pixel tiles along its width


def _read(name: str) -> torch.Tensor:
    from srgan_fast.image.read import read_image

    return read_image(DATA / name).rgb[None].contiguous()


def parity_crops(tiny: bool = False) -> list[tuple[str, torch.Tensor]]:
    """[(label, 1x3xHxW)]: the shipped crops, or one tiny odd crop for the Triton interpreter."""
    if tiny:
        h, w = TINY
        return [(f"baby {h}x{w}", _read(CROPS[1])[..., :h, :w].contiguous())]
    out = []
    for name in CROPS:
        x = _read(name)
        out.append((f"{name.split('_')[0]} {x.shape[2]}x{x.shape[3]}", x))
    return out


def tiling_frame() -> tuple[torch.Tensor, int]:
    """(1x3x31x121 frame, tile side in LR pixels): the butterfly crop and its mirror image."""
    x = _read(CROPS[0])[..., :TILING_ROWS, :]
    frame = torch.cat([x, x.flip(-1)[..., 1:]], dim=-1).contiguous()  # 61 + 60 = 121 columns
    return frame, TILING_TILE


def speed_frame(n: int, h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, h, w, generator=g)
