"""What the ingress checks before any work is queued: the content type, the body (counted while
it is read, never past ``max_body``), the image header (format and pixel count, so a
decompression bomb is refused before a pixel is decoded) and the query options.

Nothing here touches the file system: uploads are parsed in memory (a multipart upload with
python-multipart's streaming parser, keeping only the file's bytes), and no name or path from
a request is ever used for anything but the error messages.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import SrganError
from ..image.read import TooManyPixels, image_header
from .http_errors import bad_request, too_large, unsupported
from .limits import OUTPUT_FORMATS, Limits

# Bodies that are the image itself: no type, an image type we read, bytes, or curl's default for
# --data-binary (application/x-www-form-urlencoded). The bytes decide the format, not the label.
RAW_TYPES = {"", "application/octet-stream", "application/x-www-form-urlencoded", "image/png",
             "image/jpeg", "image/jpg", "image/pjpeg", "image/webp", "image/tiff", "image/bmp",
             "image/x-ms-bmp", "image/x-bmp", "image/gif"}
# Leading bytes of the formats we read: a body that starts so but fails is a broken image (400),
# anything else is a format we do not read (415).
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+",
               b"BM", b"GIF87a", b"GIF89a")
_READ = "PNG, JPEG, WebP, TIFF, BMP or GIF"
QUERY = ("format", "model", "tile", "detail", "timeout")
MIN_TILE = 64
_MAX_PARTS = 8  # a form upload needs one part; more is not an upload from our page or curl -F


@dataclass(frozen=True)
class Options:
    """A request's options after checking (query parameters, defaults filled in)."""

    ext: str | None           # output extension (.png, .jpg, ...); None: the input's format
    model: str
    tile: int | None = None   # LR pixels; 0 = whole frame; None = from the memory budget
    detail: float | None = None
    timeout_s: float = 120.0


def _media_type(content_type: str | None) -> tuple[str, dict]:
    from python_multipart.multipart import parse_options_header

    kind, params = parse_options_header(content_type or "")
    return kind.decode("latin-1").strip().lower(), params


async def read_upload(request, limits: Limits) -> bytes:
    """The image bytes of a request: its raw body, or the ``file`` part of a multipart form.
    415 for other content types, 413 as soon as the body passes ``max_body`` (a declared
    Content-Length over it is refused before reading), 400 for an empty or broken upload."""
    kind, params = _media_type(request.headers.get("content-type"))
    if kind != "multipart/form-data" and kind not in RAW_TYPES:
        raise unsupported(f"content type {kind!r} is not an image: send the image bytes ({_READ}) "
                          "as the body, or as the 'file' field of a multipart/form-data upload")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise bad_request(f"invalid Content-Length {declared[:40]!r}")
        if int(declared) > limits.max_body:
            raise _body_too_large(limits, int(declared))
    if kind == "multipart/form-data":
        data = await _read_multipart(request, params.get(b"boundary"), limits)
    else:
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limits.max_body:
                raise _body_too_large(limits)
    if not data:
        raise bad_request("empty body: send the image bytes (curl --data-binary @photo.png) or a "
                          "form upload (curl -F file=@photo.png)")
    return bytes(data)


def _body_too_large(limits: Limits, size: int | None = None) -> Exception:
    got = f" ({size:,} bytes)" if size is not None else ""
    return too_large(f"the upload{got} is over the {limits.max_body:,}-byte limit")


async def _read_multipart(request, boundary: bytes | None, limits: Limits) -> bytearray:
    """The bytes of the form's ``file`` part (else its only part with a file name), parsed as the
    body streams in; the other parts' bytes are dropped."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser

    if not boundary:
        raise bad_request("multipart/form-data without a boundary")
    parts: list[dict] = []
    state = {"field": b"", "value": b"", "ended": False, "total": 0}

    def on_part_begin():
        if len(parts) >= _MAX_PARTS:
            raise bad_request(f"a form upload has at most {_MAX_PARTS} parts")
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data, start, end):
        state["field"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        parts[-1]["headers"][state["field"].decode("latin-1").lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_part_data(data, start, end):
        if _wanted(parts[-1]):
            parts[-1]["data"] += data[start:end]

    def on_end():
        state["ended"] = True

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                        "on_header_value": on_header_value, "on_header_end": on_header_end,
                                        "on_part_data": on_part_data, "on_end": on_end})
    try:
        async for chunk in request.stream():
            state["total"] += len(chunk)
            if state["total"] > limits.max_body:
                raise _body_too_large(limits)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as e:
        raise bad_request(f"malformed multipart/form-data ({str(e)[:100]})") from None
    if not state["ended"]:
        raise bad_request("incomplete multipart/form-data (no closing boundary)")
    files = [p for p in parts if _wanted(p)]
    named = [p for p in files if _field_name(p) == "file"]
    if not named and len(files) != 1:
        raise bad_request("a form upload needs the image in a field named 'file' (curl -F file=@photo.png)")
    return (named or files)[0]["data"]


def _field_name(part: dict) -> str | None:
    return _disposition(part)[1].get(b"name", b"").decode("latin-1") or None


def _disposition(part: dict) -> tuple[str, dict]:
    from python_multipart.multipart import parse_options_header

    kind, params = parse_options_header(part["headers"].get("content-disposition", b""))
    return kind.decode("latin-1").lower(), params


def _wanted(part: dict) -> bool:
    """A part that may hold the image: the field ``file``, or any part with a file name."""
    kind, params = _disposition(part)
    return kind == "form-data" and (params.get(b"name") == b"file" or b"filename" in params)


def check_image(data: bytes, limits: Limits) -> tuple[str, int, int]:
    """(format, width, height) from the header alone: 415 for a format we do not read, 400 for
    a broken header, 413 over ``max_pixels``. Nothing is decoded here."""
    try:
        fmt, w, h = image_header(data)
    except TooManyPixels as e:  # beyond Pillow's own bomb limit: refused while reading the header
        raise too_large(f"{e} (refused before decoding)") from None
    except SrganError as e:
        if data.startswith(_SIGNATURES) or data[8:12] == b"WEBP":
            raise bad_request(f"{e}") from None
        raise unsupported(f"upload: not an image format the service reads ({_READ})") from None
    if w * h > limits.max_pixels:
        raise too_large(f"upload: declares {w}x{h} = {w * h:,} pixels, over the {limits.max_pixels:,}-pixel "
                        "limit (refused before decoding)")
    return fmt, w, h


def parse_options(query, models, default_model: str, limits: Limits, detail_levels=None) -> Options:
    """The request's options from its query parameters, checked before the body is read; 400
    with the reason for anything unknown or out of range. ``detail_levels``: the service's
    ``EngineRecipe.detail_info()`` (None: no srgan served, so no detail)."""
    unknown = sorted(set(query) - set(QUERY))
    if unknown:
        raise bad_request(f"unknown query parameter {unknown[0]!r} (accepted: {', '.join(QUERY)})")
    name = (query.get("format") or "").lower()
    if name and name not in OUTPUT_FORMATS:
        raise bad_request(f"format {name!r} is not one the service writes ({', '.join(OUTPUT_FORMATS)})")
    ext = OUTPUT_FORMATS[name] if name else None  # None: the input's own format (after its header)
    model = query.get("model") or default_model
    if model not in models:
        raise bad_request(f"unknown model {model!r} (this service runs {', '.join(models)})")
    tile = _number(query, "tile", int)
    if tile is not None and (tile < 0 or 0 < tile < MIN_TILE):
        # tiny tiles multiply the work (each carries its 40-pixel overlap): not a request's choice
        raise bad_request(f"tile must be 0 (whole image) or at least {MIN_TILE} LR pixels, got {tile}")
    detail = _number(query, "detail", float)
    if detail is not None:
        if detail_levels is None or model != detail_levels.get("model", "srgan"):
            raise bad_request(f"detail blends the srgan model with the srresnet; model={model} "
                              "takes no detail")
        levels = detail_levels.get("levels", [])
        if not detail_levels["min"] <= detail <= detail_levels["max"] or \
                not any(abs(detail - v) < 1e-9 for v in levels):
            raise bad_request(f"detail must be one of the levels this service offers "
                              f"({', '.join(f'{v:g}' for v in levels)}), got {detail:g}")
        detail = next(v for v in levels if abs(detail - v) < 1e-9)
    timeout = _number(query, "timeout", float)
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise bad_request(f"timeout must be a positive number of seconds, got {query['timeout']!r}")
    timeout_s = min(timeout, limits.timeout_s) if timeout is not None else limits.timeout_s
    return Options(ext=ext, model=model, tile=tile, detail=detail, timeout_s=timeout_s)


def _number(query, name: str, kind):
    text = query.get(name)
    if text is None or text == "":
        return None
    try:
        value = kind(text)
    except ValueError:
        raise bad_request(f"{name} must be a{'n integer' if kind is int else ' number'}, got {text[:40]!r}") from None
    if kind is float and not math.isfinite(value):
        raise bad_request(f"{name} must be a finite number, got {text[:40]!r}")
    return value
