"""Exact tiling: upscale frames of any size in tiles whose seams cannot be seen.

Every tile is extended by the generator's receptive-field radius on each side (clipped at the
frame border, where the network's own zero padding applies as in the whole frame), and only its
core is kept. Since BN is folded there is no batch dependence, so the result equals the
whole-frame result up to floating-point summation order. Tile size comes from a memory budget,
and tiles are upscaled one at a time, so only one tile's activations are ever resident.

The budget covers the whole job above the process baseline: the caller states the memory it
holds for the rest of the job (``fixed``: the output canvas, the encoder's copy, the input), and
the tiles get what is left (``plan``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import SrganError

from ..model import SCALE  # noqa: E402 - the one home of the scale factor

# Per LR pixel of a tile, beyond the engine's own activations: the float output tile (48 samples)
# and up to three temporaries of it while it is cropped, converted and quantized.
ASSEMBLY_BYTES_PER_LR_PIXEL = 4 * SCALE * SCALE * 3 * 4
MIN_TILE = 16
# Share of the budget planned for: the rest absorbs what estimates miss (allocator fragmentation,
# library scratch; measured: the torch engine's 12 KiB/pixel is met within about 10%).
PLANNED_SHARE = 0.9


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


def available_memory() -> int | None:
    """Bytes the kernel says can be allocated without swapping (Linux MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def job_budget(engine, fixed: int, budget: int | None = None) -> int:
    """The budget for a job holding ``fixed`` bytes besides its tiles. Without a ``--memory-budget``
    the tiles get the default and the job's own memory comes on top, checked against what the
    machine has free, so an oversized job ends in an error instead of being killed for memory."""
    if budget is not None:
        return budget
    avail = available_memory()
    if avail is not None and fixed > avail:
        raise SrganError(f"the output needs {fixed / 2**30:.1f} GiB of memory, more than the "
                         f"{avail / 2**30:.1f} GiB this machine has available")
    tiles = default_budget(engine.torch_device)
    if avail is not None and engine.torch_device.type == "cpu":
        tiles = min(tiles, max(avail - fixed, 0))
    return fixed + int(tiles / PLANNED_SHARE)


@dataclass(frozen=True)
class Plan:
    tile: int         # tile core side in LR pixels; 0 = the whole frame at once
    working: int      # bytes the tiles need at most (engine activations and assembly)
    fixed: int        # bytes the caller holds for the rest of the job
    budget: int

    @property
    def total(self) -> int:
        return self.working + self.fixed  # at most PLANNED_SHARE of the budget


def _per_pixel(engine) -> int:
    return engine.bytes_per_lr_pixel + ASSEMBLY_BYTES_PER_LR_PIXEL


def working_set(engine, h: int, w: int, tile: int) -> int:
    """Peak bytes of one tile's work (the whole frame when ``tile`` is 0) for an h x w frame."""
    if tile == 0:
        return h * w * _per_pixel(engine)
    r = engine.radius
    return (min(h, tile + 2 * r) * min(w, tile + 2 * r)) * _per_pixel(engine)


def plan(engine, h: int, w: int, budget: int | None = None, fixed: int = 0) -> Plan:
    """Largest tiling of an h x w frame whose working set plus ``fixed`` fits the budget."""
    budget = budget or default_budget(engine.torch_device)
    mib = 2 ** 20
    left = int(budget * PLANNED_SHARE) - fixed
    max_hw = engine.shapes.max_hw
    fits_shape = max_hw is None or (h <= max_hw[0] and w <= max_hw[1])
    if fits_shape and working_set(engine, h, w, 0) <= left:
        return Plan(0, working_set(engine, h, w, 0), fixed, budget)
    side = int(math.sqrt(max(left, 0) / _per_pixel(engine))) - 2 * engine.radius
    if max_hw is not None:
        side = min(side, min(max_hw) - 2 * engine.radius)
    if side < MIN_TILE:
        need = fixed + working_set(engine, h, w, MIN_TILE)
        held = f" (the output and its encoding alone need {fixed / mib:.0f} MiB)" if fixed else ""
        raise SrganError(f"a memory budget of {budget / mib:.0f} MiB is too small for a {w}x{h} image "
                         f"with a {engine.radius}-pixel tile overlap{held}; it needs about "
                         f"{math.ceil(need / mib)} MiB")
    return Plan(side, working_set(engine, h, w, side), fixed, budget)


def auto_tile(engine, h: int, w: int, budget: int | None = None, fixed: int = 0) -> int:
    """Tile core size in LR pixels for an h x w frame (0: the whole frame fits)."""
    return plan(engine, h, w, budget, fixed).tile


def tiles(h: int, w: int, tile: int, radius: int):
    """Yield (core, padded) boxes as (y0, y1, x0, x1) in LR pixels covering an h x w frame."""
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            yield ((y0, y1, x0, x1),
                   (max(0, y0 - radius), min(h, y1 + radius), max(0, x0 - radius), min(w, x1 + radius)))


def upscale_tiles(engine, lr: torch.Tensor, tile: int, progress=None):
    """Yield ((y0, y1, x0, x1) LR core box, SR core tile on the engine's device) covering ``lr``.

    ``tile`` 0 means the whole frame at once. The input goes to the engine one tile at a time.
    """
    n, c, h, w = lr.shape
    if tile == 0 or (tile >= h and tile >= w):
        yield (0, h, 0, w), engine(lr)
        return
    boxes = list(tiles(h, w, tile, engine.radius))
    if progress is not None:
        progress.reset(total=len(boxes))
    for (y0, y1, x0, x1), (py0, py1, px0, px1) in boxes:
        sr = engine(lr[:, :, py0:py1, px0:px1])
        oy, ox = (y0 - py0) * SCALE, (x0 - px0) * SCALE
        yield (y0, y1, x0, x1), sr[:, :, oy:oy + (y1 - y0) * SCALE, ox:ox + (x1 - x0) * SCALE]
        del sr
        if progress is not None:
            progress.update(1)


def upscale(engine, lr: torch.Tensor, tile: int | None = None, budget: int | None = None,
            out_device: torch.device | None = None, progress=None) -> torch.Tensor:
    """Upscale an NCHW [0, 1] batch with ``engine`` into a float tensor, tiled when needed.

    ``tile``: core size in LR pixels; None picks one from ``budget`` (the float result counts
    against it); 0 means whole frame. The result is on ``out_device`` (default: the engine's
    device). Image files use a quantized canvas instead (``upscale.upscale_to_file``).
    """
    n, c, h, w = lr.shape
    if tile is None:
        tile = auto_tile(engine, h, w, budget, fixed=n * c * h * w * SCALE * SCALE * 4)
    out_device = out_device or engine.torch_device
    if tile == 0 or (tile >= h and tile >= w):
        return engine(lr).to(out_device)
    out = torch.empty(n, c, h * SCALE, w * SCALE, device=out_device)
    for (y0, y1, x0, x1), sr in upscale_tiles(engine, lr, tile, progress):
        out[:, :, y0 * SCALE:y1 * SCALE, x0 * SCALE:x1 * SCALE] = sr.to(out_device)
    return out
