"""Reading and writing images, colour conversions, and the checks that keep bad input out.

Every image enters as an ``Image``: RGB float32 CHW in [0, 1], an optional alpha plane, and what
is needed to write it back the way it came (grey or colour, 8 or 16 bits). Writing goes to a
temporary name in the output folder and is renamed only when complete.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_output
from .errors import SrganError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
MAX_INPUT_PIXELS = 64_000_000  # refuse decompression bombs before decoding them


@dataclass
class Image:
    rgb: torch.Tensor  # (3, H, W) float32 in [0, 1]
    alpha: torch.Tensor | None = None  # (H, W) float32 in [0, 1]
    gray: bool = False
    bits: int = 8

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.rgb.shape[-2:])


def check_input_file(path: Path, what: str) -> None:
    """One-line errors for an input that is missing, a folder, or empty."""
    if not path.exists():
        raise SrganError(f"{path}: no such file")
    if path.is_dir():
        raise SrganError(f"{path}: is a folder, expected {what} file")
    if path.stat().st_size == 0:
        raise SrganError(f"{path}: empty file (0 bytes)")


def same_file(a: Path, b: Path) -> bool:
    """True when writing ``b`` would overwrite ``a`` (same path, or a link to the same file)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _read_png16(path: Path) -> np.ndarray | None:
    """16-bit colour PNGs: Pillow would truncate them to 8 bits, so decode with pypng."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[24] != 16 or head[25] not in (2, 6):
        return None
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    return np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(
        height, width, info["planes"])


def read_image(path) -> Image:
    """Read an image file; raises SrganError with one line for anything that is not a usable image."""
    from PIL import Image as PILImage

    path = Path(path)
    check_input_file(path, "an image")
    try:
        with PILImage.open(path) as im:
            w, h = im.size
            if w * h > MAX_INPUT_PIXELS:
                raise SrganError(f"{path}: declares {w}x{h} pixels, over the "
                                 f"{MAX_INPUT_PIXELS // 1_000_000} MP limit")
            if w < 1 or h < 1:
                raise SrganError(f"{path}: has no pixels ({w}x{h})")
            arr = _read_png16(path) if im.format == "PNG" else None
            if arr is None:
                im.load()
                arr = _pil_to_array(im)
    except SrganError:
        raise
    except PILImage.DecompressionBombError:
        raise SrganError(f"{path}: declares far more than the {MAX_INPUT_PIXELS // 1_000_000} MP limit") from None
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as e:
        raise SrganError(f"{path}: not a readable image ({e.__class__.__name__}: {e})") from None
    return array_to_image(arr)


def _pil_to_array(im) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im, dtype=np.uint16)
    if mode in ("I", "F"):  # 32-bit grey: clip into 16 bits
        a = np.asarray(im, dtype=np.float64)
        return np.clip(a, 0, 65535).astype(np.uint16)
    if mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGBA")
    return np.asarray(im)


def array_to_image(arr: np.ndarray) -> Image:
    """HW / HWC uint8 or uint16 array (1-4 channels) -> Image."""
    bits = 16 if arr.dtype == np.uint16 else 8
    scale = 65535.0 if bits == 16 else 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None]
    t = torch.from_numpy(arr.astype(np.float32) / scale).permute(2, 0, 1)
    c = t.shape[0]
    gray = c in (1, 2)
    rgb = t[:1].expand(3, -1, -1).contiguous() if gray else t[:3].contiguous()
    alpha = t[-1].contiguous() if c in (2, 4) else None
    return Image(rgb=rgb, alpha=alpha, gray=gray, bits=bits)


def image_to_array(img: Image) -> np.ndarray:
    """Image -> HW / HWC uint8 or uint16 array in the layout the image came with."""
    planes = [rgb_to_gray(img.rgb)[None]] if img.gray else [img.rgb]
    if img.alpha is not None:
        planes.append(img.alpha[None])
    t = torch.cat(planes).clamp(0, 1)
    if img.bits == 16:
        arr = (t * 65535.0).round().to(torch.int32).numpy().astype(np.uint16)
    else:
        arr = (t * 255.0).round().to(torch.uint8).numpy()
    arr = arr.transpose(1, 2, 0)
    return arr[:, :, 0] if arr.shape[2] == 1 else arr


def rgb_to_gray(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma in [0, 1] (the weights Pillow uses for 'L')."""
    r, g, b = rgb[..., 0, :, :], rgb[..., 1, :, :], rgb[..., 2, :, :]
    return 0.299 * r + 0.587 * g + 0.114 * b


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """Y of BT.601 YCbCr (studio swing, 16..235) in [0, 255] from RGB in [0, 1], as MATLAB's rgb2ycbcr."""
    r, g, b = rgb[..., 0, :, :], rgb[..., 1, :, :], rgb[..., 2, :, :]
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def write_image(path, img: Image) -> None:
    """Write ``img`` to ``path`` atomically; the format follows the extension."""
    from PIL import Image as PILImage

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTS:
        raise SrganError(f"{path}: unsupported output extension {path.suffix!r} "
                         f"(use one of {', '.join(sorted(IMAGE_EXTS))})")
    if ext in (".jpg", ".jpeg", ".bmp") and (img.bits == 16 or img.alpha is not None):
        # These formats cannot hold the extra data: keep the picture, drop what cannot be stored.
        img = Image(rgb=img.rgb, alpha=None, gray=img.gray, bits=8)
    arr = image_to_array(img)
    with atomic_output(path) as tmp:
        if arr.dtype == np.uint16 and arr.ndim == 3:
            if ext != ".png":
                arr = (arr.astype(np.uint32) // 257).astype(np.uint8)
            else:
                _write_png16(tmp, arr)
                return
        options = {"quality": 95} if ext in (".jpg", ".jpeg", ".webp") else {}
        PILImage.fromarray(arr).save(tmp, **options)


def _write_png16(path: Path, arr: np.ndarray) -> None:
    import png

    h, w, c = arr.shape
    writer = png.Writer(w, h, greyscale=False, alpha=(c == 4), bitdepth=16)
    with open(path, "wb") as f:
        writer.write(f, arr.reshape(h, w * c))


def list_images(folder) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_EXTS and p.is_file() and not p.name.startswith("."))


def to_uint8(t: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> uint8 with rounding (the one place this quantization happens)."""
    return (t.clamp(0, 1) * 255.0).round().to(torch.uint8)
