"""Writing images: how each format stores an upscaled image, and the writers.

An output is assembled in a *canvas*: an HWC numpy array already in the file's sample type
(uint8, uint16 or float32) and channel layout, filled tile by tile as the engine produces them
(``fill``), so no full-size float copy of the output ever exists. PNGs are streamed to zlib in
row bands (``pngstream``); other formats go through Pillow (tifffile for 16-bit colour and float
TIFF). What a format cannot hold is decided up front by ``output_spec``, and each compromise is
stated as a one-line note: alpha composited on white (JPEG, BMP), samples reduced to 8 bits
(JPEG, WebP, BMP), a profile that BMP cannot carry.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_output
from ..errors import SrganError
from ..model import SCALE
from .pixels import quantize, rgb_to_gray

# Per output extension: format name, grey layouts?, alpha?, sample bits it stores, ICC profile?
_CAPS = {".png": ("PNG", True, True, (8, 16), True),
         ".jpg": ("JPEG", True, False, (8,), True), ".jpeg": ("JPEG", True, False, (8,), True),
         ".webp": ("WEBP", False, True, (8,), True),
         ".tif": ("TIFF", True, True, (8, 16, 32), True), ".tiff": ("TIFF", True, True, (8, 16, 32), True),
         ".bmp": ("BMP", True, False, (8,), False)}
DEFAULT_PNG_LEVEL = 1  # zlib level: 5x faster than Pillow's default 6 for ~10% larger files
_BG = 1.0  # composite background: white


@dataclass(frozen=True)
class OutSpec:
    """How one image is stored in one output file."""

    layout: str              # "L", "LA", "RGB" or "RGBA"
    bits: int                # 8, 16 or 32 (float samples)
    luma: bool = False       # the source is grey: store luma (in every colour channel if RGB)
    composite: bool = False  # alpha composited on white (the format has no alpha)
    notes: tuple[str, ...] = ()

    @property
    def channels(self) -> int:
        return len(self.layout)

    @property
    def dtype(self):
        return {8: np.uint8, 16: np.uint16, 32: np.float32}[self.bits]


def check_extension(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in _CAPS:
        raise SrganError(f"{path}: unsupported output extension {path.suffix or '(none)'!r} "
                         f"(use one of {', '.join(sorted(_CAPS))})")
    return ext


def output_spec(path, gray: bool, alpha: bool, bits: int, icc: bool = False) -> OutSpec:
    """The layout and sample type ``path``'s format gets for such an image, with notes."""
    path = Path(path)
    name, can_grey, can_alpha, can_bits, can_icc = _CAPS[check_extension(path)]
    notes = []
    composite = alpha and not can_alpha
    if composite:
        notes.append(f"{name} has no alpha channel: transparent areas composited on white")
    out_bits = bits if bits in can_bits else max(b for b in can_bits if b <= max(bits, 8))
    if name == "TIFF" and out_bits == 32 and not gray:
        out_bits = 16
    if out_bits < bits:
        what = "float" if bits == 32 else f"{bits}-bit"
        keep = " (use .tif to keep them)" if bits == 32 else " (use .png or .tif to keep them)"
        notes.append(f"{name} stores {out_bits}-bit samples: {what} input written as {out_bits}-bit"
                     + keep)
    if icc and not can_icc:
        notes.append(f"{name} cannot carry the input's ICC colour profile: colours may shift (use .png)")
    grey_out = gray and can_grey
    if name == "TIFF" and gray and alpha and out_bits > 8:
        grey_out = False  # 16-bit grey+alpha TIFFs are not widely readable: store grey in RGBA
    layout = ("L" if grey_out else "RGB") + ("A" if alpha and not composite else "")
    return OutSpec(layout=layout, bits=out_bits, luma=gray, composite=composite, notes=tuple(notes))


def new_canvas(spec: OutSpec, h: int, w: int) -> np.ndarray:
    return np.empty((h, w, spec.channels), dtype=spec.dtype)


def fill(canvas: np.ndarray, spec: OutSpec, y0: int, x0: int, rgb: torch.Tensor,
         alpha: torch.Tensor | None = None) -> None:
    """Quantize one upscaled tile (rgb (3, h, w), alpha (h, w), float [0, 1]) into ``canvas``."""
    planes = rgb_to_gray(rgb)[None] if spec.luma else rgb
    if spec.composite and alpha is not None:
        a = alpha.clamp(0, 1)[None]
        planes = planes.clamp(0, 1) * a + _BG * (1 - a)
    if spec.luma and spec.layout.startswith("RGB"):
        planes = planes.expand(3, -1, -1)
    if spec.layout.endswith("A"):
        planes = torch.cat([planes, alpha[None]])
    q = quantize(planes, spec.bits)
    h, w = q.shape[-2:]
    canvas[y0:y0 + h, x0:x0 + w] = q.permute(1, 2, 0).numpy()


def write_canvas(path, canvas: np.ndarray, spec: OutSpec, meta=None, png_level: int = DEFAULT_PNG_LEVEL) -> None:
    """Write a filled canvas to ``path`` atomically (temporary name, renamed when complete)."""
    path = Path(path)
    ext = check_extension(path)
    with atomic_output(path) as tmp:
        if _CAPS[ext][0] == "PNG":
            with open(tmp, "wb") as f:
                _encode(f, ext, canvas, spec, meta, png_level)
        else:
            _encode(tmp, ext, canvas, spec, meta, png_level)


def encode_canvas(ext: str, canvas: np.ndarray, spec: OutSpec, meta=None,
                  png_level: int = DEFAULT_PNG_LEVEL) -> bytes:
    """The bytes ``write_canvas`` writes to a file with extension ``ext``, made in memory (a
    service response): nothing touches the disk."""
    buf = io.BytesIO()
    _encode(buf, check_extension(Path("out" + ext)), canvas, spec, meta, png_level)
    return buf.getvalue()


def _encode(target, ext: str, canvas: np.ndarray, spec: OutSpec, meta, png_level: int) -> None:
    """Encode into ``target``: a binary file object, or a path (formats other than PNG)."""
    name, _, _, _, can_icc = _CAPS[ext]
    h, w = canvas.shape[:2]
    icc = meta.icc if meta is not None and can_icc else None
    dpi = tuple(d * SCALE for d in meta.dpi) if meta is not None and meta.dpi else None
    exif = _exif(meta, w, h)
    if name == "PNG":
        from .pngstream import write_png
        write_png(target, canvas, spec.bits, level=png_level, icc=icc, dpi=dpi,
                  exif=exif.tobytes() if exif is not None else None)
    elif name == "TIFF" and spec.bits > 8:
        _write_tiff(target, canvas, spec, icc, dpi)
    else:
        _write_pil(target, name, canvas, icc, dpi, exif)


def _exif(meta, w: int, h: int):
    """The input's EXIF with the pixel dimensions of the output (orientation already removed)."""
    if meta is None or meta.exif is None:
        return None
    exif = meta.exif
    sub = exif.get_ifd(0x8769)  # Exif IFD: PixelXDimension, PixelYDimension
    if 0xA002 in sub:
        sub[0xA002] = w
    if 0xA003 in sub:
        sub[0xA003] = h
    return exif


def _write_pil(tmp, name: str, canvas: np.ndarray, icc, dpi, exif) -> None:
    from PIL import Image as PILImage

    im = PILImage.fromarray(canvas[:, :, 0] if canvas.shape[2] == 1 else canvas)
    options = {"quality": 95} if name in ("JPEG", "WEBP") else {}
    if icc:
        options["icc_profile"] = icc
    if dpi:
        options["dpi"] = dpi
    if exif is not None and name != "BMP":
        options["exif"] = exif
    im.save(tmp, format=name, **options)


def _write_tiff(tmp, canvas: np.ndarray, spec: OutSpec, icc, dpi) -> None:
    import tifffile

    arr = canvas[:, :, 0] if spec.layout == "L" else canvas
    kw = {"photometric": "minisblack" if spec.layout.startswith("L") else "rgb"}
    if spec.layout.endswith("A"):
        kw["extrasamples"] = ["unassalpha"]
    if icc:
        kw["iccprofile"] = icc
    if dpi:
        kw.update(resolution=dpi, resolutionunit="INCH")
    tifffile.imwrite(str(tmp) if isinstance(tmp, Path) else tmp, arr, **kw)


def image_to_array(img, spec: OutSpec | None = None) -> np.ndarray:
    """Image -> HWC array in its own layout (or ``spec``'s): grey, alpha and bit depth kept."""
    spec = spec or OutSpec(layout=("L" if img.gray else "RGB") + ("A" if img.alpha is not None else ""),
                           bits=img.bits, luma=img.gray)
    canvas = new_canvas(spec, *img.size)
    fill(canvas, spec, 0, 0, img.rgb, img.alpha)
    return canvas[:, :, 0] if canvas.shape[2] == 1 else canvas


def write_image(path, img, png_level: int = DEFAULT_PNG_LEVEL) -> tuple[str, ...]:
    """Write an ``Image`` to ``path`` atomically (format from the extension); returns the notes
    on what the format could not hold (see ``output_spec``)."""
    path = Path(path)
    meta = getattr(img, "meta", None)
    spec = output_spec(path, img.gray, img.alpha is not None, img.bits, icc=bool(meta and meta.icc))
    canvas = new_canvas(spec, *img.size)
    fill(canvas, spec, 0, 0, img.rgb, img.alpha)
    write_canvas(path, canvas, spec, meta, png_level=png_level)
    return spec.notes
