"""Exact tiling: upscale frames of any size in tiles whose seams cannot be seen.

Every tile is extended by the generator's receptive-field radius on each side (clipped at the
frame border, where the network's own zero padding applies as in the whole frame), and only its
core is kept. Since BN is folded there is no batch dependence, so the result equals the
whole-frame result up to floating-point summation order. Tile size comes from a memory budget,
and tiles are upscaled one at a time, so only one tile's activations are ever resident.
"""
from __future__ import annotations

import math

import torch

from .errors import SrganError

from .model import SCALE  # noqa: E402 - the one home of the scale factor


def default_budget(device: torch.device) -> int:
    """Bytes of working memory the engine may use for one tile."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    try:
        import os
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return int(min(2 << 30, total // 4))


def auto_tile(engine, h: int, w: int, budget: int | None = None) -> int:
    """Tile core size in LR pixels for an h x w frame (0: the whole frame fits)."""
    budget = budget or default_budget(engine.torch_device)
    max_hw = engine.shapes.max_hw
    fits_shape = max_hw is None or (h <= max_hw[0] and w <= max_hw[1])
    if fits_shape and h * w * engine.bytes_per_lr_pixel <= budget:
        return 0
    side = int(math.sqrt(budget / engine.bytes_per_lr_pixel)) - 2 * engine.radius
    if max_hw is not None:
        side = min(side, min(max_hw) - 2 * engine.radius)
    if side < 16:
        raise SrganError(f"a memory budget of {budget / 2**20:.0f} MiB is too small to tile with a "
                          f"{engine.radius}-pixel overlap")
    return side


def tiles(h: int, w: int, tile: int, radius: int):
    """Yield (core, padded) boxes as (y0, y1, x0, x1) in LR pixels covering an h x w frame."""
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            yield ((y0, y1, x0, x1),
                   (max(0, y0 - radius), min(h, y1 + radius), max(0, x0 - radius), min(w, x1 + radius)))


def upscale(engine, lr: torch.Tensor, tile: int | None = None, budget: int | None = None,
            out_device: torch.device | None = None, progress=None) -> torch.Tensor:
    """Upscale an NCHW [0, 1] batch with ``engine``, tiled when needed.

    ``tile``: core size in LR pixels; None picks one from ``budget``; 0 means whole frame.
    The input is moved to the engine one tile at a time, so a large frame never has to fit on
    the device at once. The result is on ``out_device`` (default: the engine's device).
    """
    n, c, h, w = lr.shape
    if tile is None:
        tile = auto_tile(engine, h, w, budget)
    out_device = out_device or engine.torch_device
    if tile == 0 or (tile >= h and tile >= w):
        return engine(lr).to(out_device)
    out = torch.empty(n, c, h * SCALE, w * SCALE, device=out_device)
    boxes = list(tiles(h, w, tile, engine.radius))
    if progress is not None:
        progress.reset(total=len(boxes))
    for (y0, y1, x0, x1), (py0, py1, px0, px1) in boxes:
        sr = engine(lr[:, :, py0:py1, px0:px1])
        oy, ox = (y0 - py0) * SCALE, (x0 - px0) * SCALE
        out[:, :, y0 * SCALE:y1 * SCALE, x0 * SCALE:x1 * SCALE] = \
            sr[:, :, oy:oy + (y1 - y0) * SCALE, ox:ox + (x1 - x0) * SCALE].to(out_device)
        if progress is not None:
            progress.update(1)
    return out
