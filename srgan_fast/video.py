"""Upscale videos 4x with any engine: ``python -m srgan_fast.video IN.mp4 OUT.mp4``.

A streaming PyAV pipeline in three overlapping stages joined by bounded queues, so memory stays
flat whatever the video's length and the engine is not left waiting on FFmpeg:

    decode thread --(LR frames)--> engine (calling thread) --(SR frames)--> encode thread

- The decode thread demuxes, decodes and converts each video frame to an RGB HWC uint8 tensor
  (uint16 for >8-bit sources) with the frame's own colour matrix and range. That is the only
  YUV -> RGB conversion. Audio/subtitle packets read between two frames ride along with the later
  one, so they reach the muxer in order without using queue slots.
- The engine stage stacks a batch, moves it to ``engine.torch_device`` and does the integer ->
  float conversion there (and float -> integer after), so a GPU engine gets raw bytes over the
  bus, not floats. Frames go through ``tiling.upscale`` (exact tiling) when large.
- The encode thread converts RGB -> YUV with the same matrix and range, stamps every frame with
  its source timestamp (variable frame rate survives), encodes, and muxes the riders: copied
  packets unchanged, re-encoded audio through its encoder.

The output is written under a temporary name beside the destination and renamed only when
complete, so an interrupted or failed run never leaves a partial file under the final name.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import queue
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import torch

from .errors import SrganError, cli, require
from .imageio import atomic_output, check_input_file, same_file, to_uint8

VIDEO_EXTS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts", ".flv",
              ".mpg", ".mpeg", ".wmv", ".ogv", ".3gp"}
from .model import SCALE  # noqa: E402 - the one home of the scale factor
_UNSPECIFIED = 2              # AVCOL_SPC/TRC/PRI_UNSPECIFIED
# AVColorSpace -> swscale's SWS_CS_* matrix id (FCC 4, BT.601 5, SMPTE240M 7, BT.2020 9).
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
# Encoder option that sets constant quality, per encoder.
_CRF_OPTION = {"libx264": "crf", "libx264rgb": "crf", "libx265": "crf", "libvpx-vp9": "crf",
               "libvpx": "crf", "libsvtav1": "crf", "libaom-av1": "crf", "h264_nvenc": "cq",
               "hevc_nvenc": "cq", "av1_nvenc": "cq"}
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
# Container metadata the muxer writes itself; copying it would describe the input, not the output.
_MUXER_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration"}


def _av():
    return require("av", "video", "av (PyAV)")


# ---------------------------------------------------------------------------- options / CLI

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


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the video options to ``parser``; options the parser already has are left alone."""
    group = parser.add_argument_group("video")
    taken = set(parser._option_string_actions)

    def add(flag, **kw):
        if flag not in taken:
            group.add_argument(flag, **kw)

    add("--codec", default=None,
        help="video encoder (default: libx264, libvpx-vp9 for .webm)")
    add("--crf", type=float, default=18, help="constant quality, lower is better (default 18)")
    add("--pix-fmt", default=None,
        help="output pixel format (default yuv420p; yuv420p10le for >8-bit sources when the encoder has it)")
    add("--preset", default=None, help="encoder speed preset, e.g. x264's veryfast..veryslow")
    add("--start", type=_time_arg, default=None, metavar="TIME",
        help="start of the segment to process (seconds or [hh:]mm:ss)")
    add("--duration", type=_time_arg, default=None, metavar="TIME", help="length of the segment")
    add("--batch", type=int, default=4, help="frames per engine call (default 4)")
    add("--queue", type=int, default=8, help="frames buffered between stages (default 8)")


def video_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of ``upscale_video`` taken from parsed ``args`` (not ``progress``)."""
    opts = {k: getattr(args, k) for k in ("codec", "crf", "pix_fmt", "preset", "start", "duration",
                                           "batch", "queue") if hasattr(args, k)}
    if getattr(args, "memory_budget", None):
        opts["budget"] = args.memory_budget * 2**20
    return opts


def parse_args(argv):
    from . import engines

    p = argparse.ArgumentParser(prog="python -m srgan_fast.video",
                                description="Upscale every frame of a video 4x, keeping audio, "
                                            "subtitles, timestamps and colour metadata.")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--backend", default="auto", choices=("auto",) + engines.BACKENDS)
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16", "int8"))
    p.add_argument("--weights", help="generator weights (default: the shipped model)")
    p.add_argument("--tile", type=int, default=None,
                   help="tile size in LR pixels (default: from the memory budget; 0 = whole frame)")
    p.add_argument("--memory-budget", type=int, default=None, metavar="MiB")
    p.add_argument("--no-progress", action="store_true")
    add_video_arguments(p)
    return p.parse_args(argv)


@cli
def main(argv=None):
    args = parse_args(argv)
    probe(args.input, args.output)             # bad input fails before the (slow) engine load
    from .engines import open_engine

    with open_engine(args.backend, args.precision, weights=args.weights) as engine:
        stats = upscale_video(args.input, args.output, engine, tile=args.tile,
                              progress=not args.no_progress, **video_options(args))
    print(f"wrote {args.output}: {stats['frames_out']} frames in {stats['seconds']:.1f} s "
          f"({stats['fps']:.2f} frames/s)", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------- input checks

def check_paths(src, dst) -> None:
    """One-line errors for a missing/empty input, an output equal to the input, a bad output folder."""
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


def probe(src, dst=None) -> dict:
    """Check that ``src`` is a decodable video (and ``dst`` a usable output); describe it."""
    if dst is not None:
        check_paths(src, dst)
    src = Path(src)
    av = _av()
    inp, vin = _open_input(src)
    try:
        first, _ = _first_frame(_demux(inp, vin), inp, vin, src, None)
        if first is None:
            raise SrganError(f"{src}: no decodable video frames")
        return {"width": first.width, "height": first.height, "frames": vin.frames or None,
                "rate": _frame_rate(vin), "format": first.format.name,
                "streams": [(s.index, s.type) for s in inp.streams]}
    except av.FFmpegError as e:
        raise SrganError(f"{src}: corrupt or unreadable video ({_reason(e)})") from None
    finally:
        inp.close()


def _open_input(src: Path):
    av = _av()
    try:
        container = av.open(str(src), "r")
    except (av.FFmpegError, UnicodeDecodeError) as e:
        raise SrganError(f"{src}: not a readable video ({_reason(e)})") from None
    videos = [s for s in container.streams.video if not s.disposition & 1024]  # 1024: cover art
    if not videos:
        container.close()
        raise SrganError(f"{src}: has no video stream")
    vin = videos[0]
    if vin.codec_context is None:
        container.close()
        raise SrganError(f"{src}: video stream #{vin.index} uses a codec this FFmpeg build cannot decode")
    vin.thread_type = "AUTO"   # frame + slice threads in the decoder
    return container, vin


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return " ".join(str(text).split()) or e.__class__.__name__


# ---------------------------------------------------------------------------- the pipeline

@dataclass
class _Item:
    """One video frame travelling through the pipeline, plus what was demuxed before it."""
    pixels: torch.Tensor | None      # HWC integer RGB: LR after decode, SR after the engine
    pts: int | None = None           # in the encoder's time base
    riders: list = field(default_factory=list)   # (kind, out_index, packet or frame)
    end: bool = False                # the last item: flush the encoders


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


@dataclass
class _Plan:
    """Everything the stages need to agree on, fixed before the first frame is encoded."""
    src: Path
    vin: object
    rgb_format: str                  # rgb24 or rgb48le
    max_value: float                 # 255 or 65535
    matrix: int                      # SWS_CS_* id for both conversions
    color_range: int                 # 1 limited (MPEG), 2 full (JPEG)
    pix_fmt: str
    enc_time_base: Fraction
    copy: dict = field(default_factory=dict)     # input stream index -> output stream
    reencode: dict = field(default_factory=dict)  # input stream index -> output stream
    out_video: object = None
    cfr: bool = False                # the container keeps one frame rate: timestamps are rounded
    src_rgb: bool = False            # the source is RGB already: no matrix to apply
    out_rgb: bool = False            # the output pixel format is RGB (lossless ffv1/x264rgb)
    start: float | None = None       # absolute segment bounds in seconds (None: whole file)
    end: float | None = None
    warnings: list = field(default_factory=list)
    streams: list = field(default_factory=list)  # per non-video input stream: what happened


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Blocking put that gives up when the pipeline is stopping."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event, other: threading.Thread | None = None):
    """Blocking get that returns None as soon as the pipeline is stopping (Ctrl-C, an error)."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if other is not None and not other.is_alive() and q.empty():
                return _Failure(RuntimeError("a pipeline stage ended unexpectedly"))
    return None


def upscale_video(src, dst, engine, *, tile=None, batch: int = 4, codec: str | None = None,
                  crf: float = 18, pix_fmt: str | None = None, preset: str | None = None,
                  start=None, duration=None, progress: bool = True, queue: int = 8,
                  budget: int | None = None, max_frames: int | None = None,
                  encoder_options: dict | None = None, log=None) -> dict:
    """Upscale every frame of ``src`` 4x with ``engine`` into ``dst``; returns run statistics.

    ``codec`` None picks libx264 (libvpx-vp9 for .webm); ``pix_fmt`` None picks yuv420p (its 10-bit
    form for >8-bit sources when the encoder has it). ``start``/``duration`` (seconds or
    ``[hh:]mm:ss``) select a segment, whose timestamps then start at 0; ``max_frames`` stops after
    that many frames. ``budget``: working memory in bytes for one engine call: a batch is split
    and a frame tiled (exactly) to stay within it; ``tile`` fixes the tile size instead. Raises
    ``SrganError`` (one line) for bad input; on any failure or Ctrl-C no file is left at ``dst``.
    """
    av = _av()
    src, dst = Path(src), Path(dst)
    check_paths(src, dst)
    start, duration = parse_time(start), parse_time(duration)
    if batch < 1 or queue < 1:
        raise SrganError("--batch and --queue must be at least 1")
    if (start is not None and start < 0) or (duration is not None and duration <= 0):
        raise SrganError("--start must be >= 0 and --duration > 0")
    log = log or (lambda msg: print(f"warning: {msg}", file=sys.stderr))

    t0 = time.perf_counter()
    inp, vin = _open_input(src)
    try:
        with atomic_output(dst) as tmp:
            stats = _run(av, inp, vin, src, dst, tmp, engine, tile=tile, batch=batch, codec=codec,
                         crf=crf, pix_fmt=pix_fmt, preset=preset, start=start, duration=duration,
                         progress=progress, queue_size=queue, budget=budget,
                         max_frames=max_frames, encoder_options=encoder_options or {}, log=log)
    finally:
        inp.close()
    stats["seconds"] = time.perf_counter() - t0
    stats["fps"] = stats["frames_out"] / stats["seconds"] if stats["seconds"] > 0 else 0.0
    stats["output"] = str(dst)
    return stats


def _run(av, inp, vin, src, dst, tmp, engine, *, tile, batch, codec, crf, pix_fmt, preset, start,
         duration, progress, queue_size, budget, max_frames, encoder_options, log) -> dict:
    stop = threading.Event()
    source = _demux(inp, vin)
    first, early = _first_frame(source, inp, vin, src, start)
    if first is None:
        raise SrganError(f"{src}: no video frames in the requested segment" if start
                         else f"{src}: no decodable video frames")
    try:
        out = av.open(str(tmp), "w")        # the temporary name keeps the extension
    except (av.FFmpegError, ValueError) as e:
        raise SrganError(f"{dst}: cannot write this container ({_reason(e)})") from None
    try:
        plan = _plan_output(av, inp, vin, out, src, dst, first, codec=codec, crf=crf,
                            pix_fmt=pix_fmt, preset=preset, start=start, duration=duration,
                            encoder_options=encoder_options, log=log)
        in_q: queue.Queue = queue.Queue(maxsize=queue_size)
        out_q: queue.Queue = queue.Queue(maxsize=queue_size)
        dec = threading.Thread(target=_decode_loop, name="srgan-decode", daemon=True,
                               args=(plan, source, first, early, in_q, stop, max_frames))
        enc_state: dict = {}
        enc = threading.Thread(target=_encode_loop, name="srgan-encode", daemon=True,
                               args=(av, plan, out, out_q, stop, enc_state))
        bar = _progress_bar(progress, vin, plan, max_frames)
        dec.start()
        enc.start()
        try:
            counts = _engine_loop(plan, engine, in_q, out_q, stop, dec, enc_state, tile=tile,
                                  batch=batch, budget=budget, bar=bar)
            enc.join()
            if "error" in enc_state:
                raise enc_state["error"]
        finally:
            stop.set()
            dec.join()
            enc.join()
            if bar is not None:
                bar.close()
        try:
            out.close()     # writes the trailer: the file is complete only after this
        except av.FFmpegError as e:
            raise SrganError(f"{dst}: writing failed ({_reason(e)})") from None
    except BaseException:
        with contextlib.suppress(Exception):
            out.close()
        raise
    if counts["frames_out"] != counts["frames_in"]:   # a bug, never expected
        raise RuntimeError(f"frame count mismatch: {counts['frames_in']} in, {counts['frames_out']} out")
    ovs = plan.out_video
    return {**counts, "input": str(src), "codec": ovs.codec_context.name, "pix_fmt": plan.pix_fmt,
            "size": (ovs.codec_context.width, ovs.codec_context.height),
            "crf": crf if ovs.codec_context.name in _CRF_OPTION else None,
            "streams": plan.streams, "warnings": plan.warnings, "engine": engine.info()}


def _demux(inp, vin):
    """Yield ('video', frame) and ('packet', packet) in file order; decode errors propagate."""
    for packet in inp.demux():
        if packet.stream.index == vin.index:
            for frame in vin.decode(packet):     # the final empty packet flushes the decoder
                yield "video", frame
        else:
            yield "packet", packet


def _first_frame(source, inp, vin, src, start):
    """Seek to ``start`` and decode up to the first frame to keep (None if there is none)."""
    av = _av()
    early = []
    try:
        if start:
            t = start + (inp.start_time or 0) / 1e6
            inp.seek(int(t / vin.time_base), stream=vin, backward=True, any_frame=False)
        for kind, obj in source:
            if kind == "packet":
                early.append(obj)
            elif not start or _frame_time(obj) >= start + (inp.start_time or 0) / 1e6 - 1e-6:
                return obj, early
    except av.FFmpegError as e:
        raise SrganError(f"{src}: corrupt or unreadable video ({_reason(e)})") from None
    return None, early


def _frame_time(frame) -> float:
    return float(frame.pts * frame.time_base) if frame.pts is not None else float("nan")


def _plan_output(av, inp, vin, out, src, dst, first, *, codec, crf, pix_fmt, preset, start,
                 duration, encoder_options, log) -> _Plan:
    """Create every output stream (all must exist before the first packet is written)."""
    in_fmt = first.format
    deep = max((c.bits for c in in_fmt.components), default=8) > 8
    src_rgb = not _is_yuv(in_fmt.name)
    w, h = first.width, first.height

    codec = codec or ("libvpx-vp9" if dst.suffix.lower() == ".webm" else "libx264")
    try:
        ovs = out.add_stream(codec, rate=_frame_rate(vin))
    except (av.FFmpegError, ValueError) as e:
        raise SrganError(f"{dst}: cannot encode with {codec!r} here ({_reason(e)})") from None
    supported = [f.name for f in (ovs.codec_context.codec.video_formats or [])]
    if pix_fmt is None:
        pix_fmt = "yuv420p10le" if deep and "yuv420p10le" in supported else "yuv420p"
        if supported and pix_fmt not in supported:
            pix_fmt = supported[0]
    elif supported and pix_fmt not in supported:
        raise SrganError(f"{codec} cannot encode pixel format {pix_fmt!r} "
                         f"(it takes {', '.join(supported)})")
    ovs.width, ovs.height, ovs.pix_fmt = w * SCALE, h * SCALE, pix_fmt

    # Timestamps: keep the source's time base. AVI stores no timestamps, only a frame rate:
    # there frames get 1/fps units (rounded) and no B-frames, whose reordering AVI cannot express.
    cfr = out.format.name == "avi"
    tb = Fraction(1, 1) / _frame_rate(vin) if cfr else vin.time_base
    ovs.codec_context.time_base = tb
    ovs.time_base = tb
    if cfr:
        ovs.codec_context.max_b_frames = 0

    options = dict(encoder_options)
    if codec in _CRF_OPTION and crf is not None:
        options.setdefault(_CRF_OPTION[codec], f"{crf:g}")
        if codec.startswith("libvpx"):
            options.setdefault("b", "0")      # VP9 constant-quality mode needs bitrate 0
    if preset:
        options.setdefault("preset", preset)
    ovs.codec_context.options = options

    # Colour: decode and encode with one matrix and range, and say so in the output. An untagged
    # source is read the way players read it (BT.709 from 720 lines up, else BT.601); the 4x
    # output would be guessed as BT.709, so it is tagged explicitly.
    spc = first.colorspace
    if src_rgb:
        spc = 1                                  # RGB source: no matrix to keep; use BT.709
    elif spc not in _SWS_MATRIX:
        spc = 1 if h >= 720 else 6
    rng = 2 if first.color_range == 2 or in_fmt.name.startswith("yuvj") else 1
    if src_rgb:
        rng = 1
    cc = ovs.codec_context
    out_rgb = not _is_yuv(pix_fmt)
    cc.colorspace, cc.color_range = (0, 2) if out_rgb else (spc, rng)    # 0: AVCOL_SPC_RGB
    if first.color_primaries != _UNSPECIFIED:
        cc.color_primaries = first.color_primaries
    if first.color_trc != _UNSPECIFIED:
        cc.color_trc = first.color_trc
    with contextlib.suppress(AttributeError, TypeError, ValueError):
        if vin.sample_aspect_ratio:
            cc.sample_aspect_ratio = vin.sample_aspect_ratio
    # Rotation/flip: the pixels are upscaled as stored, so the same display matrix applies.
    matrix = next((sd for sd in first.side_data if sd.type.name == "DISPLAYMATRIX"), None)
    if matrix is not None:
        import numpy as np
        ovs.set_display_matrix(np.frombuffer(bytes(matrix), np.int32).tolist())
    ovs.metadata.update({k: v for k, v in vin.metadata.items() if k.lower() not in _MUXER_TAGS})
    out.metadata.update({k: v for k, v in inp.metadata.items() if k.lower() not in _MUXER_TAGS})

    t_start = t_end = None
    if start is not None or duration is not None:
        t_start = (start or 0.0) + (inp.start_time or 0) / 1e6
        t_end = t_start + duration if duration is not None else None
    plan = _Plan(src=src, vin=vin, rgb_format="rgb48le" if deep else "rgb24",
                 max_value=65535.0 if deep else 255.0, matrix=_SWS_MATRIX[spc], color_range=rng,
                 pix_fmt=pix_fmt, enc_time_base=tb, start=t_start, end=t_end)
    plan.out_video, plan.cfr, plan.src_rgb, plan.out_rgb = ovs, cfr, src_rgb, out_rgb
    _plan_other_streams(av, inp, vin, out, dst, plan, log)
    return plan


def _is_yuv(pix_fmt: str) -> bool:
    return pix_fmt.startswith(("yuv", "nv", "gray", "p0", "p2", "p4", "y2", "uyvy", "yuyv"))


def _frame_rate(vin) -> Fraction:
    for rate in (vin.average_rate, vin.guessed_rate, vin.base_rate):
        if rate and 0 < rate < 1000:
            return Fraction(rate).limit_denominator(1001 * 1000)
    return Fraction(25)


def _plan_other_streams(av, inp, vin, out, dst, plan: _Plan, log) -> None:
    """Copy audio/subtitle streams the output container accepts; re-encode or drop the rest."""
    def warn(msg):
        plan.warnings.append(msg)
        log(msg)

    from av.stream import Discard

    for s in inp.streams:
        if s.index == vin.index:
            continue
        name = s.codec_context.name if s.codec_context is not None else "unknown"
        what = {"index": s.index, "type": s.type, "codec": name}
        plan.streams.append(what)
        if s.type not in ("audio", "subtitle"):
            s.discard = Discard.all    # cover art, data and attachment streams: not carried over
            what["action"] = "dropped"
            warn(f"input stream #{s.index} ({s.type}, {name}) is not carried over")
            continue
        if _copy_works(av, plan.src, s.index, out.format.name):
            o = out.add_stream_from_template(s)
            o.metadata.update({k: v for k, v in s.metadata.items() if k.lower() not in _MUXER_TAGS})
            o.disposition = s.disposition
            plan.copy[s.index] = o
            what["action"] = "copied"
            continue
        if s.type == "subtitle" or s.codec_context is None:
            s.discard = Discard.all
            what["action"] = "dropped"
            warn(f"{dst.suffix} cannot hold {s.type} stream #{s.index} ({name}); dropped it")
            continue
        target = out.default_audio_codec
        target = {"none": "aac", "opus": "libopus", "mp3": "libmp3lame"}.get(target, target)
        try:
            rate = s.codec_context.sample_rate
            rates = av.codec.Codec(target, "w").audio_rates
            if rates and rate not in rates:
                rate = 48000 if 48000 in rates else max(rates)
            o = out.add_stream(target, rate=rate)
            layout = s.codec_context.layout
            if layout.name.endswith("channels"):     # unnamed order (e.g. PCM in Matroska)
                layout = _DEFAULT_LAYOUTS.get(layout.nb_channels, layout)
            o.layout = layout
            o.codec_context.time_base = Fraction(1, rate)
            o.metadata.update(s.metadata)
            o.disposition = s.disposition
        except (av.FFmpegError, ValueError) as e:
            raise SrganError(f"{dst}: cannot carry audio stream #{s.index} ({name}): {_reason(e)}") from None
        plan.reencode[s.index] = o
        what["action"] = f"re-encoded to {target}"
        warn(f"{dst.suffix} cannot hold {name} audio (stream #{s.index}); re-encoding it to {target}")


def _copy_works(av, src: Path, index: int, fmt: str) -> bool:
    """Remux the first packet of stream ``index`` into an in-memory ``fmt`` file.

    Some muxers accept a codec when the stream is added and refuse it only when they write their
    index at the end (PCM without a channel layout in MP4): find that out before the long run.
    """
    import io

    with av.open(str(src)) as inp:
        s = inp.streams[index]
        packet = None
        for n, p in enumerate(inp.demux(s)):
            if p.size:
                packet = p
                break
            if n > 1000:
                break
        try:
            with av.open(io.BytesIO(), "w", format=fmt) as trial:
                t = trial.add_stream_from_template(s)
                if packet is not None:
                    packet.stream = t
                    trial.mux(packet)
        except (av.FFmpegError, ValueError):
            return False
    return True


def _decode_loop(plan: _Plan, source, first, early, in_q, stop, max_frames) -> None:
    """Decode thread: frames -> integer RGB tensors, packets -> riders; then an end item."""
    av = _av()
    vin, riders = plan.vin, []
    last_pts = last_out = last_end = None
    n = 0
    step = max(1, round(1 / (_frame_rate(vin) * vin.time_base)))   # one frame, in stream units
    offset = round(plan.start / vin.time_base) if plan.start is not None else 0
    ends: dict = {}      # stream index -> a packet past the segment end was seen
    video_done = False
    try:
        riders.extend(_riders(plan, early, ends))
        for kind, obj in _chain([("video", first)], source):
            if stop.is_set():
                return
            if kind == "packet":
                riders.extend(_riders(plan, [obj], ends))
                # After the segment's last frame, read on only until every carried stream has
                # passed the end too (they are interleaved a little behind or ahead of video).
                if video_done and (all(ends.get(i) for i in (*plan.copy, *plan.reencode))
                                   or _packet_time(obj) > plan.end + 5):
                    break
                continue
            if video_done:
                continue
            t = _frame_time(obj)
            if plan.start is not None and t < plan.start - 1e-6:
                continue
            if max_frames and n >= max_frames:
                break
            if plan.end is not None and t >= plan.end - 1e-6:
                video_done = True
                if not (plan.copy or plan.reencode):
                    break
                continue
            if obj.is_corrupt:
                raise SrganError(f"{plan.src}: corrupt video frame at {t:.3f} s")
            pts = obj.pts
            if pts is None:     # some containers (AVI) carry no timestamps: count frames
                pts = last_pts + step if last_pts is not None else offset
            last_pts = pts
            last_end = (pts + (obj.duration or step)) * vin.time_base
            out_pts = pts - offset
            if plan.cfr:
                out_pts = round(out_pts * vin.time_base / plan.enc_time_base)
            if last_out is not None and out_pts <= last_out:
                out_pts = last_out + 1      # the encoder needs strictly increasing timestamps
            last_out = out_pts
            item = _Item(_to_tensor(obj, plan), out_pts, riders)
            riders = []
            n += 1
            if not _put(in_q, item, stop):
                return
        if plan.end is None and not max_frames:
            _check_complete(plan, last_end)
        _put(in_q, _Item(None, riders=riders, end=True), stop)
    except SrganError as e:
        _put(in_q, _Failure(e), stop)
    except av.FFmpegError as e:
        _put(in_q, _Failure(SrganError(f"{plan.src}: corrupt or unreadable video ({_reason(e)})")), stop)
    except BaseException as e:   # a bug: hand it to the calling thread with its traceback
        _put(in_q, _Failure(e), stop)


def _chain(*iterables):
    for it in iterables:
        yield from it


def _packet_time(p) -> float:
    ts = p.pts if p.pts is not None else p.dts
    return float(ts * p.stream.time_base) if ts is not None else float("-inf")


def _riders(plan: _Plan, packets, ends: dict) -> list:
    """Packets to copy and decoded audio to re-encode, inside the segment, re-timed to it."""
    out = []
    for p in packets:
        i = p.stream.index
        if i not in plan.copy and i not in plan.reencode:
            continue
        if p.size == 0:                  # end of stream: flushes a decoder, nothing to copy
            if i in plan.reencode:
                out.extend(("audio", i, f) for f in _retime(p.stream.decode(p), plan))
            continue
        t = _packet_time(p)
        if plan.start is not None and t < plan.start - 1e-6:
            continue
        if plan.end is not None and t >= plan.end - 1e-6:
            ends[i] = True
            continue
        if i in plan.copy:
            if plan.start is not None:
                shift = round(plan.start / p.stream.time_base)
                if p.pts is not None:
                    p.pts -= shift
                if p.dts is not None:
                    p.dts -= shift
            out.append(("packet", i, p))
        else:
            out.extend(("audio", i, f) for f in _retime(p.stream.decode(p), plan))
    return out


def _retime(frames, plan: _Plan):
    """Decoded audio -> timestamps in 1/sample_rate, shifted to the segment start."""
    for f in frames:
        if f.pts is not None:
            t = f.pts * f.time_base - Fraction(plan.start or 0).limit_denominator(10**6)
            f.pts = round(t * f.sample_rate)
            f.time_base = Fraction(1, f.sample_rate)
        yield f


def _check_complete(plan: _Plan, last_end) -> None:
    """A truncated file decodes without error but stops early: compare with the declared length."""
    vin = plan.vin
    declared = None
    if vin.duration:
        declared = float((vin.duration + (vin.start_time or 0)) * vin.time_base)
    elif "DURATION" in vin.metadata:         # Matroska keeps per-stream durations as tags
        with contextlib.suppress(ValueError, TypeError, SrganError):
            declared = parse_time(vin.metadata["DURATION"].strip()) + \
                float((vin.start_time or 0) * vin.time_base)
    if declared is None or last_end is None:
        return
    slack = max(0.25, 3 / float(_frame_rate(vin)))
    if float(last_end) < declared - slack:
        raise SrganError(f"{plan.src}: truncated: video stops at {float(last_end):.2f} s of "
                         f"{declared:.2f} s declared")


def _to_tensor(frame, plan: _Plan) -> torch.Tensor:
    """The one YUV -> RGB conversion: with the source's matrix and range, into an integer tensor."""
    if plan.src_rgb:
        arr = frame.to_ndarray(format=plan.rgb_format)
    else:
        arr = frame.to_ndarray(format=plan.rgb_format, src_colorspace=plan.matrix,
                               src_color_range=plan.color_range)
    return torch.from_numpy(arr)


def upscale_frames(engine, frames: torch.Tensor, *, max_value: float = 255.0, tile=None,
                   budget: int | None = None) -> torch.Tensor:
    """The engine stage: N x H x W x 3 integer RGB (CPU) -> 4x integer RGB (CPU).

    The integer -> float conversion and back happen on ``engine.torch_device``. Without a fixed
    ``tile``, frames go to the engine whole, as many at a time as the memory ``budget`` allows;
    a frame too large for it alone is tiled exactly by ``tiling.upscale``.
    """
    from . import tiling

    dev = engine.torch_device
    n, h, w, _ = frames.shape
    step = n
    if tile is None:
        budget = budget or tiling.default_budget(dev)
        step = max(1, min(n, budget // max(1, h * w * engine.bytes_per_lr_pixel)))
    if engine.shapes.max_batch:
        step = min(step, engine.shapes.max_batch)
    outs = []
    for i in range(0, n, step):
        x = frames[i:i + step]
        if dev.type == "cuda":
            x = x.pin_memory()
        x = x.to(dev, non_blocking=True).permute(0, 3, 1, 2).float().div_(max_value)
        sr = tiling.upscale(engine, x, tile=tile, budget=budget)
        outs.append(_quantize(sr, max_value).permute(0, 2, 3, 1).contiguous().cpu())
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def _engine_loop(plan, engine, in_q, out_q, stop, dec, enc_state, *, tile, batch, budget,
                 bar) -> dict:
    """Calling thread: batch frames, upscale on the engine's device, pass results on in order."""
    pending: list[_Item] = []
    counts = {"frames_in": 0, "frames_out": 0, "engine_seconds": 0.0, "wait_seconds": 0.0}

    def stopped():
        return enc_state.get("error") or SrganError("pipeline stopped")

    def flush():
        if not pending:
            return
        t = time.perf_counter()
        sr = upscale_frames(engine, torch.stack([it.pixels for it in pending]),
                            max_value=plan.max_value, tile=tile, budget=budget)
        counts["engine_seconds"] += time.perf_counter() - t
        for it, img in zip(pending, sr):
            it.pixels = img
            if not _put(out_q, it, stop):
                raise stopped()
        counts["frames_out"] += len(pending)
        if bar is not None:
            bar.update(len(pending))
        pending.clear()

    while True:
        t = time.perf_counter()
        item = _get(in_q, stop, dec)
        counts["wait_seconds"] += time.perf_counter() - t
        if isinstance(item, _Failure):
            raise item.exc
        if item is None:
            raise stopped()
        if item.end:
            flush()
            if not _put(out_q, item, stop):
                raise stopped()
            return counts
        if pending and pending[0].pixels.shape != item.pixels.shape:
            (h0, w0), (h1, w1) = pending[0].pixels.shape[:2], item.pixels.shape[:2]
            raise SrganError(f"{plan.src}: frame size changes mid-stream ({w0}x{h0} -> {w1}x{h1}); "
                             f"one output stream cannot hold both")
        pending.append(item)
        counts["frames_in"] += 1
        if len(pending) >= batch:
            flush()


def _quantize(sr: torch.Tensor, max_value: float) -> torch.Tensor:
    if max_value == 255.0:
        return to_uint8(sr)
    return (sr.clamp(0, 1) * max_value).round().to(torch.uint16)


def _encode_loop(av, plan: _Plan, out, out_q, stop, state: dict) -> None:
    """Encode thread: RGB -> YUV with the source's matrix, encode, mux riders; flush at the end."""
    ovs = plan.out_video
    cc = ovs.codec_context
    try:
        while True:
            item = _get(out_q, stop)
            if item is None:
                return
            if item.pixels is not None:
                arr = item.pixels.numpy()
                vf = av.VideoFrame.from_numpy_buffer(arr, format=plan.rgb_format)
                if plan.out_rgb:
                    vf = vf.reformat(format=plan.pix_fmt)
                else:
                    vf = vf.reformat(format=plan.pix_fmt, dst_colorspace=plan.matrix,
                                     dst_color_range=plan.color_range)
                vf.colorspace, vf.color_range = cc.colorspace, cc.color_range
                vf.color_primaries, vf.color_trc = cc.color_primaries, cc.color_trc
                vf.pts, vf.time_base = item.pts, plan.enc_time_base
                out.mux(ovs.encode(vf))
            for kind, index, obj in item.riders:
                if kind == "packet":
                    obj.stream = plan.copy[index]
                    out.mux(obj)
                else:
                    out.mux(plan.reencode[index].encode(obj))
            if item.end:
                out.mux(ovs.encode(None))
                for o in plan.reencode.values():
                    out.mux(o.encode(None))
                return
    except av.FFmpegError as e:
        state["error"] = SrganError(f"encoding failed ({_reason(e)})")
    except BaseException as e:
        state["error"] = e
    finally:
        if "error" in state:
            stop.set()


def _progress_bar(progress, vin, plan, max_frames):
    """tqdm bar in frames (it shows frames/s and the ETA); the total is estimated from the header."""
    if not progress:
        return None
    from tqdm import tqdm

    rate = float(_frame_rate(vin))
    first = float((vin.start_time or 0) * vin.time_base)
    length = float(vin.duration * vin.time_base) if vin.duration else None
    total = vin.frames or (length * rate if length else None)
    if plan.end is not None:
        total = (plan.end - plan.start) * rate
    elif plan.start is not None and total:
        total = max(0.0, total - (plan.start - first) * rate)
    if max_frames:
        total = min(total, max_frames) if total else max_frames
    return tqdm(total=round(total) if total else None, unit="frame", desc=plan.src.name,
                dynamic_ncols=True, smoothing=0.1)


# ---------------------------------------------------------------------------- throughput

class _NearestEngine:
    """Pixel replication: an engine that costs almost nothing, to time the pipeline's own stages."""
    name, precision, device = "nearest", "fp32", "cpu"
    torch_device = torch.device("cpu")
    radius, bytes_per_lr_pixel = 0, 64

    def __init__(self):
        from .engines.base import ShapeRange
        self.shapes = ShapeRange()

    def __call__(self, lr):
        return lr.repeat_interleave(SCALE, 2).repeat_interleave(SCALE, 3)

    def info(self):
        return {"backend": self.name}


def measure_pipeline(engine, src, frames: int | None = 16, *, tile=None, batch: int = 4,
                     repeats: int = 1, **options) -> dict:
    """Frames/s of the whole pipeline next to the bare engine's on the same frames.

    - ``bare_fps``: the engine stage alone (integer -> float on the device, ``tiling.upscale``,
      float -> integer) on the first ``frames`` frames of ``src``, decoded beforehand;
    - ``pipeline_fps``: ``upscale_video`` end to end (decode, engine, encode, mux) on the same
      frames; ``efficiency`` = pipeline / bare (the goal is >= 0.9);
    - ``io_fps``: the pipeline with a free engine (pixel replication), i.e. what decoding,
      conversion and encoding alone sustain. Where stages share CPU cores, expect efficiency near
      1 / (1 + bare_fps / io_fps); where the engine has its own device, near 1 while io_fps > bare_fps.
    Bare and pipeline runs alternate ``repeats`` times (medians reported), after one warm-up batch,
    so a machine whose load drifts biases neither figure. ``cpu_efficiency`` compares the process
    CPU time per frame of the two instead (all threads, FFmpeg's included): on a shared, busy CPU
    it is the steadier figure for CPU engines, where wall-clock times swing with other load.
    """
    import statistics
    import tempfile

    src = Path(src)
    inp, vin = _open_input(src)
    try:
        lr = []
        for frame in inp.decode(vin):
            lr.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
            if frames and len(lr) >= frames:
                break
    finally:
        inp.close()
    if not lr:
        raise SrganError(f"{src}: no decodable video frames")
    budget = options.get("budget")

    def bare():
        t, c = time.perf_counter(), time.process_time()
        for i in range(0, len(lr), batch):
            upscale_frames(engine, torch.stack(lr[i:i + batch]), tile=tile, budget=budget)
        return time.perf_counter() - t, time.process_time() - c

    with tempfile.TemporaryDirectory() as tmpdir:
        def pipeline(eng):
            c = time.process_time()
            stats = upscale_video(src, Path(tmpdir) / "measure.mkv", eng, tile=tile, batch=batch,
                                  progress=False, max_frames=len(lr), log=lambda _m: None, **options)
            return stats["seconds"], time.process_time() - c, stats

        upscale_frames(engine, torch.stack(lr[:batch]), tile=tile, budget=budget)   # warm-up
        io_seconds, _, _ = pipeline(_NearestEngine())
        bare_s, bare_c, pipe_s, pipe_c, busy = [], [], [], [], []
        for _ in range(max(1, repeats)):
            seconds, cpu = bare()
            bare_s.append(seconds)
            bare_c.append(cpu)
            seconds, cpu, stats = pipeline(engine)
            pipe_s.append(seconds)
            pipe_c.append(cpu)
            busy.append(stats["engine_seconds"] / seconds)
    n, med = len(lr), statistics.median
    bare_fps, pipe_fps = n / med(bare_s), n / med(pipe_s)
    return {"frames": n, "lr_size": tuple(lr[0].shape[1::-1]), "batch": batch, "repeats": len(bare_s),
            "bare_fps": bare_fps, "pipeline_fps": pipe_fps, "efficiency": pipe_fps / bare_fps,
            "cpu_efficiency": med(bare_c) / med(pipe_c), "io_fps": n / io_seconds,
            "engine_busy": med(busy), "bare_seconds": bare_s, "pipeline_seconds": pipe_s,
            "bare_cpu_seconds": bare_c, "pipeline_cpu_seconds": pipe_c, "engine": engine.info()}


if __name__ == "__main__":
    sys.exit(main())
