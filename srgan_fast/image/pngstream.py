"""A streaming PNG encoder: rows go to zlib in bands, so no full-size copy of the image is made.

Pillow encodes from its own full-size copy of the image (4 bytes per RGB pixel); here the
canvas is read in bands of rows, each band gets the PNG "Up" filter (cheap in numpy, and on
photographs it compresses about as well as Pillow's adaptive filtering at level 1) and is
compressed as it goes. Writes 8/16-bit grey, grey+alpha, RGB and RGBA, with the ICC profile
(iCCP), resolution (pHYs) and EXIF (eXIf) chunks.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> grey, grey+alpha, RGB, RGBA
_UP = 2  # PNG filter type


def _chunk(f, kind: bytes, data: bytes) -> None:
    f.write(struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def write_png(f, arr: np.ndarray, bits: int = 8, level: int = 1, icc: bytes | None = None,
              dpi: tuple[float, float] | None = None, exif: bytes | None = None, band: int = 64) -> None:
    """Write an HW[C] uint8/uint16 array as PNG to the binary file ``f``; ``level`` is zlib's 0-9."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    h, w, c = arr.shape
    if bits == 16:
        arr = arr.astype(np.uint16, copy=False)
    f.write(_SIGNATURE)
    _chunk(f, b"IHDR", struct.pack(">IIBBBBB", w, h, bits, _COLOUR_TYPE[c], 0, 0, 0))
    if icc:
        _chunk(f, b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if dpi:
        ppm = [max(1, round(d / 0.0254)) for d in dpi]
        _chunk(f, b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1))
    if exif:
        _chunk(f, b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    z = zlib.compressobj(level)
    prev = None
    for y0 in range(0, h, band):
        rows = arr[y0:y0 + band]
        if bits == 16:  # PNG samples are big-endian
            rows = rows.astype(">u2")
        rows = np.ascontiguousarray(rows).view(np.uint8).reshape(len(rows), -1)
        data = np.empty((len(rows), rows.shape[1] + 1), np.uint8)
        data[:, 0] = _UP if level else 0
        if level:  # "Up": each byte minus the byte above it (mod 256)
            np.subtract(rows[1:], rows[:-1], out=data[1:, 1:])
            data[0, 1:] = rows[0] - prev if prev is not None else rows[0]
        else:
            data[:, 1:] = rows
        prev = rows[-1].copy()
        out = z.compress(data)
        if out:
            _chunk(f, b"IDAT", out)
    _chunk(f, b"IDAT", z.flush())
    _chunk(f, b"IEND", b"")
