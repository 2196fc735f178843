"""The input side: path checks, opening and probing a video, demuxing and timing helpers."""
from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path

from ..errors import SrganError, require
from ..image.read import check_input_file, same_file
from .options import VIDEO_EXTS, parse_time


def av():
    return require("av", "video", "av (PyAV)")


def reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return " ".join(str(text).split()) or e.__class__.__name__


def check_paths(src, dst, overwrite: bool = True) -> None:
    """One-line errors for a missing/empty input, an output equal to the input, a bad output
    folder or extension, and (without ``overwrite``) an output that already exists."""
    src, dst = Path(src), Path(dst)
    check_input_file(src, "a video")
    if same_file(src, dst):
        raise SrganError(f"{dst}: output would overwrite the input")
    if dst.is_dir():
        raise SrganError(f"{dst}: is a folder, expected an output video file name")
    folder = dst.parent if str(dst.parent) else Path(".")
    if folder.exists() and not folder.is_dir():
        raise SrganError(f"{dst}: {folder} is not a folder")
    if not folder.is_dir():
        raise SrganError(f"{dst}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise SrganError(f"{dst}: output folder {folder} is not writable")
    if dst.suffix.lower() not in VIDEO_EXTS:
        raise SrganError(f"{dst}: unsupported output extension {dst.suffix!r} "
                         f"(use one of {', '.join(sorted(VIDEO_EXTS))})")
    if not overwrite and dst.exists():
        raise SrganError(f"{dst}: exists (use --overwrite to replace it)")


def probe(src, dst=None, overwrite: bool = True) -> dict:
    """Check that ``src`` is a decodable video (and ``dst`` a usable output); describe it."""
    if dst is not None:
        check_paths(src, dst, overwrite)
    src = Path(src)
    lib = av()
    inp, vin = open_input(src)
    try:
        first, _ = first_frame(demux(inp, vin), inp, vin, src, None)
        if first is None:
            raise SrganError(f"{src}: no decodable video frames")
        return {"width": first.width, "height": first.height, "frames": vin.frames or None,
                "rate": frame_rate(vin), "format": first.format.name,
                "streams": [(s.index, s.type) for s in inp.streams]}
    except lib.FFmpegError as e:
        raise SrganError(f"{src}: corrupt or unreadable video ({reason(e)})") from None
    finally:
        inp.close()


def open_input(src: Path):
    lib = av()
    try:
        container = lib.open(str(src), "r")
    except (lib.FFmpegError, UnicodeDecodeError) as e:
        raise SrganError(f"{src}: not a readable video ({reason(e)})") from None
    videos = [s for s in container.streams.video if not s.disposition & 1024]  # 1024: cover art
    if not videos:
        container.close()
        raise SrganError(f"{src}: has no video stream")
    vin = videos[0]
    if vin.codec_context is None:
        index = vin.index      # read before close: PyAV 18.1.1 refuses a closed stream's fields
        container.close()
        raise SrganError(f"{src}: video stream #{index} uses a codec this FFmpeg build cannot decode")
    vin.thread_type = "AUTO"   # frame + slice threads in the decoder
    return container, vin


def demux(inp, vin, video_only: bool = False):
    """Yield ('video', frame) and ('packet', packet) in file order; decode errors propagate."""
    for packet in (inp.demux(vin) if video_only else inp.demux()):
        if packet.stream.index == vin.index:
            for frame in vin.decode(packet):     # the final empty packet flushes the decoder
                yield "video", frame
        else:
            yield "packet", packet


def first_frame(source, inp, vin, src, start, seek_pts: int | None = None):
    """Seek to ``start`` (seconds; or to the keyframe at ``seek_pts``) and decode up to the first
    frame at or after it (None if there is none), with the packets demuxed before it."""
    lib = av()
    early = []
    t0 = (inp.start_time or 0) / 1e6
    try:
        if seek_pts is not None:
            inp.seek(seek_pts, stream=vin, backward=True, any_frame=False)
        elif start:
            inp.seek(int((start + t0) / vin.time_base), stream=vin, backward=True, any_frame=False)
        for kind, obj in source:
            if kind == "packet":
                early.append(obj)
            elif not start or frame_time(obj) >= start + t0 - 1e-6:
                return obj, early
    except lib.FFmpegError as e:
        raise SrganError(f"{src}: corrupt or unreadable video ({reason(e)})") from None
    return None, early


def frame_time(frame) -> float:
    return float(frame.pts * frame.time_base) if frame.pts is not None else float("nan")


def packet_time(p) -> float:
    ts = p.pts if p.pts is not None else p.dts
    return float(ts * p.stream.time_base) if ts is not None else float("-inf")


def frame_rate(vin) -> Fraction:
    for rate in (vin.average_rate, vin.guessed_rate, vin.base_rate):
        if rate and 0 < rate < 1000:
            return Fraction(rate).limit_denominator(1001 * 1000)
    return Fraction(25)


def declared_end(vin) -> float | None:
    """The video stream's end in seconds as its header declares it, if it does."""
    if vin.duration:
        return float((vin.duration + (vin.start_time or 0)) * vin.time_base)
    if "DURATION" in vin.metadata:         # Matroska keeps per-stream durations as tags
        with contextlib.suppress(ValueError, TypeError, SrganError):
            return parse_time(vin.metadata["DURATION"].strip()) + \
                float((vin.start_time or 0) * vin.time_base)
    return None


def check_complete(src, vin, last_end) -> None:
    """A truncated file decodes without error but stops early: compare with the declared length."""
    declared = declared_end(vin)
    if declared is None or last_end is None:
        return
    slack = max(0.25, 3 / float(frame_rate(vin)))
    if float(last_end) < declared - slack:
        raise SrganError(f"{src}: truncated: video stops at {float(last_end):.2f} s of "
                         f"{declared:.2f} s declared")
