"""Data sourcing: the dataset root, LR/HR pairs, and the images builds calibrate and check on.

The shared SR datasets (Set5, Set14 with their standard ``*_LRx4`` inputs, T91, BSD200) live in
``$SRGAN_FAST_DATA``, else ``../shared/data/sr`` beside this repository. Nothing is downloaded:
without them, builds calibrate and check on deterministic synthetic images and say so.

One pair contract: ``load_pairs`` returns ``Pair(name, lr, hr)`` with uint8 HWC RGB arrays, HR
cropped to a multiple of the scale and LR exactly 1/SCALE of it (the standard LR file when there
is one, else MATLAB-compatible bicubic). Callers convert to tensors with ``to_tensor``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..errors import SrganError
from ..model import SCALE
from ..image.pixels import to_uint8

ENV = "SRGAN_FAST_DATA"


def default_root() -> Path:
    """Where the shared datasets are expected: ``$SRGAN_FAST_DATA``, else ``../shared/data/sr``."""
    env = os.environ.get(ENV)
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data" / "sr"


def data_root() -> Path | None:
    """The dataset root when it holds at least Set5, else None."""
    root = default_root()
    return root if (root / "Set5").is_dir() else None


def dataset(name: str) -> Path | None:
    root = data_root()
    return root / name if root is not None and (root / name).is_dir() else None


class Pair(NamedTuple):
    name: str
    lr: np.ndarray   # uint8 HWC RGB
    hr: np.ndarray   # uint8 HWC RGB, SCALE x the LR size


def u8(img) -> np.ndarray:
    """uint8 HWC RGB of an ``image.read.Image`` or a CHW float tensor in [0, 1]."""
    rgb = img.rgb if hasattr(img, "rgb") else img
    return np.ascontiguousarray(to_uint8(rgb).permute(1, 2, 0).numpy())


def to_tensor(img_u8: np.ndarray) -> torch.Tensor:
    """uint8 HWC -> float NCHW in [0, 1] (batch of one)."""
    return torch.from_numpy(np.ascontiguousarray(img_u8)).permute(2, 0, 1).float()[None] / 255


def load_pairs(hr_dir, lr_dir=None, lr: str = "auto", min_hr: int = 0, limit: int | None = None,
               progress: bool = False, allow_empty: bool = False) -> list[Pair]:
    """Every image of ``hr_dir`` as a ``Pair``.

    ``lr``: ``auto`` takes ``lr_dir`` (default ``<hr_dir>_LRx4``) files where present, else
    bicubic; ``required`` refuses a missing LR file; ``bicubic`` always downscales the HR image.
    Images whose HR side is below ``min_hr`` (or the scale) are left out; none left is an error
    unless ``allow_empty``.
    """
    from ..image.read import list_images, read_image
    from ..image.imresize import imresize, modcrop

    hr_dir = Path(hr_dir)
    if not hr_dir.is_dir():
        raise SrganError(f"{hr_dir}: not a folder of images")
    lr_dir = Path(lr_dir) if lr_dir else hr_dir.with_name(hr_dir.name + "_LRx4")
    files = list_images(hr_dir)[:limit]
    if progress:
        from tqdm import tqdm

        files = tqdm(files, desc=f"loading {hr_dir.name}", unit="img", leave=False)
    pairs = []
    for f in files:
        hr = modcrop(u8(read_image(f)), SCALE)
        if min(hr.shape[:2]) < max(min_hr, SCALE):
            continue
        lr_file = lr_dir / f.name
        if lr != "bicubic" and lr_file.is_file():
            small = u8(read_image(lr_file))
            if small.shape[0] * SCALE != hr.shape[0] or small.shape[1] * SCALE != hr.shape[1]:
                raise SrganError(f"{lr_file}: {small.shape[1]}x{small.shape[0]} is not 1/{SCALE} of {f}")
        elif lr == "required":
            raise SrganError(f"{lr_file}: missing LR image for {f}")
        else:
            small = imresize(hr, 1 / SCALE)
        pairs.append(Pair(f.stem, small, hr))
    if not pairs and not allow_empty:
        raise SrganError(f"{hr_dir}: no images" + (f" of at least {min_hr} pixels" if min_hr else ""))
    return pairs


def synthetic_images(count: int = 4, size: tuple[int, int] = (64, 64), seed: int = 0) -> list[torch.Tensor]:
    """Deterministic image-like test inputs: smooth colour fields, hard-edged shapes, stripes and
    grain, quantized to 8 bits. Used where no real images are available (no network here)."""
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    out = []
    for _ in range(count):
        coarse = torch.rand(1, 3, 4, 4, generator=gen)
        img = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)[0]
        for _shape in range(6):
            colour = torch.rand(3, 1, 1, generator=gen)
            cy, cx, r = (float(v) for v in torch.rand(3, generator=gen))
            if torch.rand(1, generator=gen) < 0.5:
                mask = ((yy - cy).abs() < r / 3) & ((xx - cx).abs() < r / 2)
            else:
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 < (r / 3) ** 2
            img = torch.where(mask, colour.expand(3, h, w), img)
        angle, freq = float(torch.rand(1, generator=gen)) * 3.14, 4 + 20 * float(torch.rand(1, generator=gen))
        img = img + 0.1 * torch.sin(freq * 6.28 * (xx * np.cos(angle) + yy * np.sin(angle)))
        img = img + 0.02 * torch.randn(3, h, w, generator=gen)
        out.append(to_uint8(img).float()[None] / 255)  # on the uint8 grid, like real images
    return out


def _center_crop(t: torch.Tensor, size: int) -> torch.Tensor:
    h, w = t.shape[-2:]
    s0, s1 = min(size, h), min(size, w)
    y, x = (h - s0) // 2, (w - s1) // 2
    return t[..., y:y + s0, x:x + s1].contiguous()


def _spread(items: list, count: int) -> list:
    """``count`` items spread evenly over the list (deterministic)."""
    if len(items) <= count:
        return items
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def calib_folder(calib) -> Path:
    folder = Path(calib)
    if not folder.is_dir():
        raise SrganError(f"--calib {folder}: not a folder")
    return folder


def calibration_source(calib=None) -> str:
    """Which calibration data a build uses: ``folder``, ``bsd200`` or ``synthetic``."""
    if calib is not None:
        return "folder"
    return "bsd200" if dataset("BSD200") is not None else "synthetic"


def calibration_images(calib=None, count: int = 24, crop: int = 96) -> tuple[list[torch.Tensor], str]:
    """LR inputs for activation ranges and INT8 calibration, all the same square size (NCHW, [0, 1]).

    ``calib``: a folder of the user's own (LR) images. Default: BSD200 photographs downscaled with
    MATLAB bicubic when the shared datasets exist (kept apart from Set5/Set14, which the quality
    gate measures), else deterministic synthetic images. Returns (images, description).
    """
    from ..image.read import list_images, read_image

    if calib is not None:
        folder = calib_folder(calib)
        files = _spread(list_images(folder), count)
        if not files:
            raise SrganError(f"--calib {folder}: no images found")
        imgs = [read_image(f).rgb[None] for f in files]
        size = min(crop, *(min(i.shape[-2:]) for i in imgs))
        return [_center_crop(i, size) for i in imgs], f"{len(imgs)} images from {folder}"
    bsd = dataset("BSD200")
    if bsd is not None:
        files = _spread(list_images(bsd), count)
        lrs = [_center_crop(to_tensor(_bicubic_lr(f)), crop) for f in files]
        size = min(min(i.shape[-2:]) for i in lrs)
        return [_center_crop(i, size) for i in lrs], f"{len(lrs)} BSD200 images (bicubic x1/4, {size}x{size} crops)"
    return synthetic_images(count, (crop, crop)), f"{count} SYNTHETIC images ({crop}x{crop})"


def _bicubic_lr(f: Path) -> np.ndarray:
    from ..image.read import read_image
    from ..image.imresize import imresize, modcrop

    return imresize(modcrop(u8(read_image(f)), SCALE), 1 / SCALE)


def check_images(count: int = 3) -> tuple[list[torch.Tensor], str]:
    """Real LR images for parity checks: Set5 LR crops when available, else synthetic ones."""
    from ..image.read import list_images, read_image

    lr_dir = dataset("Set5_LRx4")
    if lr_dir is not None:
        files = list_images(lr_dir)[:count]
        return [_center_crop(read_image(f).rgb[None], 64) for f in files], f"{len(files)} Set5 LR crops (64x64)"
    return synthetic_images(count, (48, 56), seed=1), f"{count} synthetic images (48x56)"


def gate_sets(calib=None) -> tuple[dict[str, list[Pair]], str]:
    """{set name: [Pair]} for the INT8 quality gate, and where they come from.

    Set5 and Set14 with their standard LR inputs when the shared data exist (and no --calib);
    otherwise up to 8 --calib images (or synthetic ones) taken as HR and downscaled with bicubic.
    """
    from ..image.read import list_images, read_image
    from ..image.imresize import imresize, modcrop

    if calib is None and data_root() is not None:
        sets = {name: load_pairs(dataset(name), lr="required")
                for name in ("Set5", "Set14") if dataset(name) and dataset(f"{name}_LRx4")}
        if sets:
            return sets, "standard LR inputs"
    hrs, source = [], ""
    if calib is not None:
        files = list_images(calib_folder(calib))[:8]
        hrs = [(f.stem, modcrop(u8(read_image(f)), SCALE)) for f in files]
        hrs = [(n, h) for n, h in hrs if min(h.shape[:2]) >= 64]
        source = "--calib images as HR, bicubic x1/4"
    if not hrs:
        hrs = [(f"synthetic{i}", u8(t[0])) for i, t in enumerate(synthetic_images(4, (192, 192), seed=7))]
        source = "SYNTHETIC images as HR, bicubic x1/4"
    return {"eval": [Pair(n, imresize(h, 1 / SCALE), h) for n, h in hrs]}, source
