"""Video options: one dataclass for every setting of a video job, and its CLI arguments."""
from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass, field, fields, replace

from ..errors import SrganError

from ..image.read import VIDEO_EXTS  # noqa: F401 - re-exported: the video stage's inputs and outputs


@dataclass
class VideoOptions:
    """Everything ``upscale_video`` needs besides the source, destination and engine.

    ``codec`` None picks libx264 (libvpx-vp9 for .webm); ``pix_fmt`` None picks yuv420p (its
    10-bit form for >8-bit sources when the encoder has it). ``start``/``duration`` (seconds or
    ``[hh:]mm:ss``) select a range, whose timestamps then start at 0; ``max_frames`` stops after
    that many frames. ``budget``: working memory in bytes for one engine call; ``tile`` fixes the
    tile size instead. ``overwrite``: replace an existing output.
    """
    codec: str | None = None
    crf: float = 18
    pix_fmt: str | None = None
    preset: str | None = None
    start: float | None = None
    duration: float | None = None
    batch: int = 4
    queue: int = 8
    tile: int | None = None
    budget: int | None = None
    max_frames: int | None = None
    encoder_options: dict = field(default_factory=dict)
    progress: bool = True
    overwrite: bool = False
    log: object = None

    def checked(self) -> "VideoOptions":
        """A copy with times parsed; one-line errors for values that cannot work."""
        opts = replace(self, start=parse_time(self.start), duration=parse_time(self.duration),
                       encoder_options=dict(self.encoder_options or {}))
        if opts.batch < 1 or opts.queue < 1:
            raise SrganError("--batch and --queue must be at least 1")
        if (opts.start is not None and opts.start < 0) or \
                (opts.duration is not None and opts.duration <= 0):
            raise SrganError("--start must be >= 0 and --duration > 0")
        if opts.tile is not None and opts.tile < 0:
            raise SrganError("--tile must be >= 0")
        if opts.crf is not None and not (math.isfinite(opts.crf) and opts.crf >= 0):
            raise SrganError(f"--crf must be a number >= 0, got {opts.crf}")
        return opts

    @classmethod
    def make(cls, options: "VideoOptions | None" = None, **kw) -> "VideoOptions":
        """``options`` (or the defaults) with keyword overrides; unknown names are an error."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kw) - names)
        if unknown:
            raise TypeError(f"unknown video option(s) {', '.join(unknown)} "
                            f"(accepted: {', '.join(sorted(names))})")
        return replace(options or cls(), **kw)


def parse_time(text) -> float | None:
    """Seconds from ``12.5``, ``1:05`` or ``01:02:03.5``; None stays None."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    if not re.fullmatch(r"\d+(\.\d*)?|(\d+:){1,2}\d+(\.\d*)?", text.strip()):
        raise SrganError(f"bad time {text!r}: use seconds (12.5) or [hh:]mm:ss[.ms]")
    seconds = 0.0
    for part in text.strip().split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def _time_arg(text):
    try:
        return parse_time(text)
    except SrganError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def argument_adder(parser: argparse.ArgumentParser, title: str):
    """``add(flag, **kw)`` into a new group of ``parser``, leaving out flags the parser already
    has (a host command's own option wins)."""
    group = parser.add_argument_group(title)
    taken = set(parser._option_string_actions)

    def add(flag, **kw):
        if flag not in taken:
            group.add_argument(flag, **kw)
    return add


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the video options to ``parser``; options the parser already has are left alone."""
    add = argument_adder(parser, "video")
    add("--codec", default=None,
        help="video encoder (default: libx264, libvpx-vp9 for .webm)")
    add("--crf", type=float, default=18,
        help="constant quality, lower is better (default: %(default)s)")
    add("--pix-fmt", default=None,
        help="output pixel format (default: yuv420p; yuv420p10le for >8-bit sources when the "
             "encoder has it)")
    add("--preset", default=None,
        help="encoder speed preset, e.g. x264's veryfast..veryslow (default: the encoder's)")
    add("--start", type=_time_arg, default=None, metavar="TIME",
        help="start of the range to process, seconds or [hh:]mm:ss (default: the beginning)")
    add("--duration", type=_time_arg, default=None, metavar="TIME",
        help="length of the range to process (default: to the end)")
    add("--batch", type=int, default=4, help="frames per engine call (default: %(default)s)")
    add("--queue", type=int, default=8,
        help="frames buffered between stages (default: %(default)s)")


def video_options(args: argparse.Namespace) -> dict:
    """The ``VideoOptions`` fields taken from parsed ``args`` (not ``progress``), as a dict."""
    opts = {k: getattr(args, k) for k in ("codec", "crf", "pix_fmt", "preset", "start", "duration",
                                           "batch", "queue") if hasattr(args, k)}
    if getattr(args, "memory_budget", None):
        opts["budget"] = args.memory_budget * 2**20
    return opts
