"""The model's fp16 range check on real pixels: the largest activation of every layer of the
generator on the LR crops shipped in the package (``data/``), against fp16's range.

fp16 stores at most 65504: a layer past it turns into inf and the frame goes black (or NaN). Of
this network the activations scale about linearly with the input's contrast, and two crops never
show the worst frame, so a layer counts as fitting only below ``FP16_SAFE_LIMIT``, a 4x margin (two
binades) under fp16's maximum: the margin the build uses to keep layers fp32 (``build/fp16.py``).
``fits(weights)`` is what ``--precision auto`` asks on an NVIDIA GPU (``precision.choose``: fp16
only when it fits); the doctor reports the same per-layer ranges (``doctor/ranges.py``).
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import torch

FP16_MAX = 65504.0
FP16_SAFE_LIMIT = FP16_MAX / 4
DATA = Path(__file__).parent / "data"
# Two crops of the LR test images (Set5/Set14 LR butterfly and baby) at odd sizes on purpose:
# odd heights and widths are where padding, pixel shuffle and tiling off-by-ones show.
CROPS = ("butterfly_47x61.png", "baby_31x29.png")


def crop_pixels() -> list[torch.Tensor]:
    """The shipped crops as 1x3xHxW float RGB in [0, 1] (8-bit PNGs without colour profiles)."""
    import numpy as np
    from PIL import Image

    out = []
    for name in CROPS:
        with Image.open(DATA / name) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        out.append(torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous())
    return out


@torch.inference_mode()
def layer_ranges(generator, images: list[torch.Tensor]) -> list[tuple[str, float]]:
    """[(layer, largest |activation|)] in forward order over ``images``, BN folded. Layers: every
    conv and PReLU, each residual block's sum, and the long skip's sum (``body + head``). Named by
    their path in the generator (``blocks.3.conv1``: the first conv of the fourth block)."""
    from .model import ResidualBlock, fold_bn

    g = fold_bn(generator)
    peaks: dict[str, float] = {}

    def record(name, value):
        v = float(value.detach().abs().amax()) if value.numel() else 0.0
        peaks[name] = max(peaks.get(name, 0.0), v if math.isfinite(v) else math.inf)

    hooks = []
    for name, m in g.named_modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.PReLU)) or isinstance(m, ResidualBlock):
            label = f"{name} (sum)" if isinstance(m, ResidualBlock) else name
            hooks.append(m.register_forward_hook(lambda _m, _i, out, label=label: record(label, out)))
    hooks.append(g.upsample.register_forward_pre_hook(lambda _m, inp: record("body + head (sum)", inp[0])))
    try:
        for x in images:
            g(x.float())
    finally:
        for h in hooks:
            h.remove()
    return list(peaks.items())


def verdict(ranges: list[tuple[str, float]], limit: float = FP16_SAFE_LIMIT) -> tuple[bool, str]:
    """(every layer under ``limit``, the sentence that says so or names the first layer past it)."""
    over = [(name, v) for name, v in ranges if not v <= limit]
    if over:
        name, v = over[0]
        more = f", and {len(over) - 1} more layer{'s' if len(over) > 2 else ''}" if len(over) > 1 else ""
        return False, f"{name} reaches {v:.3g}, past fp16's safe limit {limit:.0f}{more}"
    name, v = max(ranges, key=lambda r: r[1], default=("-", 0.0))
    return True, f"largest activation {v:.3g}, at {name}, fits fp16 with a {FP16_MAX / limit:g}x margin"


def fits(weights=None, model: str | None = None) -> tuple[bool, str]:
    """The fp16 range check of a generator (a ``Generator``, a weights file, or the ``model``'s
    shipped weights), on the shipped crops: (fits, why)."""
    from .model import Generator

    if isinstance(weights, Generator):
        return verdict(layer_ranges(weights.eval(), crop_pixels()))
    from .checkpoints import model_weights

    path = Path(model_weights(model, weights)).resolve()
    try:
        st = path.stat()
    except OSError:
        return False, f"{path}: cannot read the weights for the fp16 range check"
    return _fits_file(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _fits_file(path: str, size: int, mtime_ns: int) -> tuple[bool, str]:
    from .checkpoints import load_generator

    return verdict(layer_ranges(load_generator(path), crop_pixels()))
