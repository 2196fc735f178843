"""Reading images, colour conversions, and the checks that keep bad input out.

Every image enters as an ``Image``: RGB float32 CHW in [0, 1], an optional alpha plane, what is
needed to write it back the way it came (grey or colour; 8 or 16 bits, or float samples) and the
colour metadata worth keeping (ICC profile, EXIF, resolution). EXIF orientation is applied on
reading, so pixels are upright and the written file carries no orientation tag. Writing lives in
``write`` (re-exported here).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import SrganError
from .pixels import quantize, rgb_to_gray, rgb_to_y, to_uint8  # noqa: F401 - re-exported

# Still-image formats read and written. GIF is read (single-frame only), never written.
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
INPUT_EXTS = IMAGE_EXTS | {".gif"}
# Videos are the video stage's; listed here so a folder of images can skip them by name.
VIDEO_EXTS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts", ".flv",
              ".mpg", ".mpeg", ".wmv", ".ogv", ".3gp"}
MAX_INPUT_PIXELS = 64_000_000  # refuse decompression bombs before decoding them
# Pillow's names for the input formats, for bytes without a file name (a service upload); the
# extension is what an output in the same format gets (GIF is read, never written: PNG).
INPUT_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "WEBP": ".webp", "TIFF": ".tif",
                 "BMP": ".bmp", "GIF": ".png"}
_OPEN_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")  # Pillow opens MPO (camera JPEG) as JPEG
ORIENTATION = 0x0112  # EXIF tag
# EXIF IFD0 tags worth carrying over (description, camera, dates, authorship, the Exif and GPS
# sub-IFDs). Everything else there describes the input's pixel layout (a TIFF's IFD0 is its
# image structure) or is rewritten separately (resolution, ICC).
_EXIF_KEEP = {0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298, 0x8769, 0x8825}


class TooManyPixels(SrganError):
    """An image whose header declares more pixels than allowed (refused before decoding)."""


def _bomb(name, e) -> TooManyPixels:
    """Pillow's own decompression-bomb refusal, in our words (its message has the pixel count)."""
    import re

    count = re.search(r"\((\d+) pixels\)", str(e))
    what = f"{int(count.group(1)):,} pixels" if count else "far more pixels"
    return TooManyPixels(f"{name}: declares {what}, over the {MAX_INPUT_PIXELS // 1_000_000} MP limit")


@dataclass
class Meta:
    """Metadata carried from input to output."""

    icc: bytes | None = None      # ICC colour profile, written back unchanged
    exif: object | None = None    # PIL Exif without the orientation tag
    dpi: tuple[float, float] | None = None


@dataclass
class Image:
    rgb: torch.Tensor  # (3, H, W) float32 in [0, 1]
    alpha: torch.Tensor | None = None  # (H, W) float32 in [0, 1]
    gray: bool = False
    bits: int = 8  # 8 or 16 bits per sample, or 32 for float samples in [0, 1]
    meta: Meta = field(default_factory=Meta)

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


def _stream(src):
    """A fresh binary stream over a file (Path) or in-memory bytes."""
    return io.BytesIO(src) if isinstance(src, (bytes, bytearray, memoryview)) else open(src, "rb")


def _read_png16(src) -> np.ndarray | None:
    """16-bit colour PNGs: Pillow would truncate them to 8 bits, so decode with pypng."""
    with _stream(src) as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[24] != 16 or head[25] not in (2, 6):
        return None
    import png

    with _stream(src) as f:
        width, height, rows, info = png.Reader(file=f).asDirect()
        return np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(
            height, width, info["planes"])


def _read_tiff16(src, im) -> np.ndarray | None:
    """16-bit colour TIFFs: Pillow reads them as 8 bits, so decode with tifffile."""
    if im.format != "TIFF" or im.mode not in ("RGB", "RGBA", "RGBX"):
        return None
    bits = im.tag_v2.get(258, (8,))
    if max(bits if isinstance(bits, tuple) else (bits,)) != 16:
        return None
    import tifffile

    with _stream(src) as f:
        arr = tifffile.imread(f, key=0)
    return arr.astype(np.uint16) if arr.dtype.kind == "u" and arr.ndim == 3 and arr.shape[2] in (3, 4) else None


def read_image(path) -> Image:
    """Read a still image; raises SrganError with one line for anything that is not usable."""
    path = Path(path)
    check_input_file(path, "an image")
    return _read(path, path)


def read_image_bytes(data: bytes, name: str = "upload", max_pixels: int = MAX_INPUT_PIXELS) -> Image:
    """``read_image`` for bytes in memory (a service upload): the same rules and one-line errors
    (``name`` stands for the file), formats limited to INPUT_FORMATS, nothing written to disk."""
    if not data:
        raise SrganError(f"{name}: empty (0 bytes)")
    return _read(bytes(data), name, max_pixels, formats=_OPEN_FORMATS)


def image_header(data: bytes, name: str = "upload") -> tuple[str, int, int]:
    """(Pillow format, width, height) of image bytes from the header alone, nothing decoded: so a
    decompression bomb is refused before a pixel is decoded. One-line SrganError when the bytes
    are not one of INPUT_FORMATS or the header is unreadable."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(data), formats=_OPEN_FORMATS) as im:
            return im.format, *im.size
    except PILImage.DecompressionBombError as e:
        raise _bomb(name, e) from None
    except (OSError, SyntaxError, ValueError, EOFError, KeyError, IndexError) as e:
        raise SrganError(f"{name}: not a readable image ({e.__class__.__name__}: {e})") from None


def _read(src, label, max_pixels: int = MAX_INPUT_PIXELS, formats=None) -> Image:
    """Decode ``src`` (a Path, or bytes) after the header checks; ``label`` names it in errors."""
    from PIL import Image as PILImage

    try:
        with _stream(src) as f, PILImage.open(f, formats=formats) as im:
            _check_header(label, im, max_pixels)
            arr = _read_png16(src) if im.format == "PNG" else _read_tiff16(src, im)
            if arr is None:
                im.load()
                arr = _pil_to_array(label, im)
            meta, orientation = _metadata(im)
    except SrganError:
        raise
    except PILImage.DecompressionBombError as e:
        raise _bomb(label, e) from None
    except (OSError, SyntaxError, ValueError, EOFError, KeyError, IndexError) as e:
        raise SrganError(f"{label}: not a readable image ({e.__class__.__name__}: {e})") from None
    img = array_to_image(upright(arr, orientation))
    img.meta = meta
    return img


def _check_header(path, im, max_pixels: int = MAX_INPUT_PIXELS) -> None:
    w, h = im.size
    if w * h > max_pixels:
        limit = f"{max_pixels // 1_000_000} MP" if max_pixels >= 1_000_000 else f"{max_pixels:,}-pixel"
        raise TooManyPixels(f"{path}: declares {w}x{h} pixels, over the {limit} limit")
    if w < 1 or h < 1:
        raise SrganError(f"{path}: has no pixels ({w}x{h})")
    frames = getattr(im, "n_frames", 1)
    if frames > 1 and im.format in ("GIF", "PNG", "WEBP"):
        raise SrganError(f"{path}: animated image ({frames} frames); only still images are upscaled: "
                         f"convert it to a video (e.g. ffmpeg -i {path.name} out.mp4) and upscale that")


def _metadata(im) -> tuple[Meta, int]:
    """ICC profile, EXIF (orientation removed, returned apart) and resolution of an open image."""
    exif = im.getexif()
    try:
        orientation = int(exif.get(ORIENTATION, 1) or 1)
    except (TypeError, ValueError):
        orientation = 1
    for tag in [t for t in exif if t not in _EXIF_KEEP]:
        del exif[tag]
    dpi = im.info.get("dpi")
    try:  # 1 dpi is a writer's placeholder, never a real resolution
        dpi = (float(dpi[0]), float(dpi[1])) if dpi and float(dpi[0]) > 1 and float(dpi[1]) > 1 else None
    except (TypeError, ValueError, IndexError):
        dpi = None
    icc = im.info.get("icc_profile") if im.mode != "CMYK" else None  # CMYK is converted to sRGB
    return Meta(icc=icc or None, exif=exif if len(exif) else None, dpi=dpi), orientation


def upright(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an HW[C] array, as a camera viewer would."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
           7: lambda a: a.swapaxes(0, 1)[::-1, ::-1], 8: lambda a: np.rot90(a, 1)}
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


def _pil_to_array(path, im) -> np.ndarray:
    """Any Pillow mode -> HW / HWC uint8 or uint16, or HW float32 in [0, 1]."""
    mode = im.mode
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)
    if mode == "I":  # 32-bit integer grey: accepted when it fits 16 bits (how Pillow opens some 16-bit files)
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise SrganError(f"{path}: 32-bit integer samples outside 0..65535 ({a.min()}..{a.max()}) "
                             "are not supported; convert to 16 bits")
        return a.astype(np.uint16)
    if mode == "F":
        a = np.asarray(im, dtype=np.float32)
        if not np.isfinite(a).all() or (a.size and (a.min() < 0 or a.max() > 1)):
            lo, hi = np.nanmin(a), np.nanmax(a)
            raise SrganError(f"{path}: float samples must lie in [0, 1] (found {lo:g}..{hi:g}); "
                             "rescale the image first")
        return a
    if mode in ("L", "RGB") and "transparency" in im.info:  # a tRNS colour key: real alpha
        return np.asarray(im.convert(mode.replace("L", "LA") if mode == "L" else "RGBA"))
    if mode == "CMYK" and im.info.get("icc_profile"):
        im = _cmyk_to_srgb(im)
    conversions = {"1": "L", "La": "LA", "PA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB",
                   "P": "RGBA" if "transparency" in im.info else "RGB",
                   "CMYK": "RGB", "YCbCr": "RGB", "HSV": "RGB"}
    if mode in conversions:
        im = im.convert(conversions[mode])
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        raise SrganError(f"{path}: image mode {mode} is not supported")
    return np.asarray(im)


def _cmyk_to_srgb(im):
    """A CMYK image with its own profile, converted to sRGB through that profile (Little CMS)."""
    import io

    from PIL import ImageCms

    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))
        return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError):
        return im.convert("RGB")


def array_to_image(arr: np.ndarray) -> Image:
    """HW / HWC uint8, uint16 or float32 ([0, 1]) array (1-4 channels) -> Image."""
    bits = {np.dtype(np.uint16): 16, np.dtype(np.float32): 32}.get(arr.dtype, 8)
    scale = {16: 65535.0, 32: 1.0}.get(bits, 255.0)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    t = torch.from_numpy(np.require(arr, requirements=["C", "W"])).permute(2, 0, 1).float() / scale
    c = t.shape[0]
    gray = c in (1, 2)
    rgb = t[:1].expand(3, -1, -1).contiguous() if gray else t[:3].contiguous()
    alpha = t[-1].contiguous() if c in (2, 4) else None
    return Image(rgb=rgb, alpha=alpha, gray=gray, bits=bits)


def list_images(folder) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_EXTS and p.is_file() and not p.name.startswith("."))


from .write import image_to_array, write_image  # noqa: E402,F401 - the writing half
