"""``upscale_video``: one pass over a video (or one segment of it) through the three stages.

The output is written under a temporary name beside the destination and renamed only when
complete, so an interrupted or failed run never leaves a partial file under the final name.
"""
from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from pathlib import Path

from ..atomic import atomic_output
from ..errors import SrganError
from .options import VideoOptions
from .plan import CRF_OPTION, plan_output
from .source import av, check_paths, demux, first_frame, frame_rate, open_input, reason
from .stages import decode_loop, encode_loop, engine_loop


def _warn(msg):
    print(f"warning: {msg}", file=sys.stderr)


def upscale_video(src, dst, engine, options: VideoOptions | None = None, **kw) -> dict:
    """Upscale every frame of ``src`` 4x with ``engine`` into ``dst``; returns run statistics.

    ``options`` (a ``VideoOptions``) and/or its fields as keywords (``tile``, ``batch``,
    ``codec``, ``crf``, ``pix_fmt``, ``preset``, ``start``, ``duration``, ``progress``, ...).
    Raises ``SrganError`` (one line) for bad input; on any failure or Ctrl-C no file is left at
    ``dst``. An existing ``dst`` is replaced only with ``overwrite``.
    """
    opts = VideoOptions.make(options, **kw).checked()
    src, dst = Path(src), Path(dst)
    check_paths(src, dst, opts.overwrite)
    t0 = time.perf_counter()
    inp, vin = open_input(src)
    try:
        with atomic_output(dst) as tmp:
            stats = run_pass(inp, vin, src, dst, tmp, engine, opts)
    finally:
        inp.close()
    stats["seconds"] = time.perf_counter() - t0
    stats["fps"] = stats["frames_out"] / stats["seconds"] if stats["seconds"] > 0 else 0.0
    stats["output"] = str(dst)
    return stats


def run_pass(inp, vin, src, dst, tmp, engine, opts: VideoOptions, segment=None, bar=None) -> dict:
    """Decode, upscale and encode into ``tmp`` (a file named like ``dst``).

    ``segment`` (lo_pts, hi_pts, first_pts): only the frames with lo_pts <= pts < hi_pts, video
    alone, decoding from the keyframe at or before first_pts, whose frame gets timestamp 0 (a
    part of a segmented job). ``bar``: a progress bar to update instead of making one."""
    lib = av()
    lo, hi, seek = segment or (None, None, None)
    source = demux(inp, vin, video_only=segment is not None)
    start = opts.start if segment is None else None   # a segment seeks to its keyframe
    first, early = first_frame(source, inp, vin, src, start, seek_pts=seek)
    if first is None:
        raise SrganError(f"{src}: no video frames in the requested range" if opts.start
                         else f"{src}: no decodable video frames")
    try:
        out = lib.open(str(tmp), "w")        # the temporary name keeps the extension
    except (lib.FFmpegError, ValueError) as e:
        raise SrganError(f"{dst}: cannot write this container ({reason(e)})") from None
    try:
        plan = plan_output(lib, inp, vin, out, src, dst, first, opts, opts.log or _warn,
                           others=segment is None)
        plan.lo_pts, plan.hi_pts, plan.origin_pts = lo, hi, seek
        own_bar = bar is None and opts.progress
        if own_bar:
            bar = progress_bar(vin, plan, opts.max_frames)
        try:
            counts = _stages(plan, engine, out, source, first, early, opts, bar)
        finally:
            if own_bar and bar is not None:
                bar.close()
        try:
            out.close()     # writes the trailer: the file is complete only after this
        except lib.FFmpegError as e:
            raise SrganError(f"{dst}: writing failed ({reason(e)})") from None
    except BaseException:
        with contextlib.suppress(Exception):
            out.close()
        raise
    if counts["frames_out"] != counts["frames_in"]:   # a bug, never expected
        raise RuntimeError(f"frame count mismatch: {counts['frames_in']} in, {counts['frames_out']} out")
    cc = plan.out_video.codec_context
    return {**counts, "input": str(src), "codec": cc.name, "pix_fmt": plan.pix_fmt,
            "size": (cc.width, cc.height), "crf": opts.crf if cc.name in CRF_OPTION else None,
            "streams": plan.streams, "warnings": plan.warnings, "engine": engine.info()}


def _stages(plan, engine, out, source, first, early, opts: VideoOptions, bar) -> dict:
    """Run decode and encode threads around the engine loop on the calling thread."""
    stop = threading.Event()
    in_q: queue.Queue = queue.Queue(maxsize=opts.queue)
    out_q: queue.Queue = queue.Queue(maxsize=opts.queue)
    dec = threading.Thread(target=decode_loop, name="srgan-decode", daemon=True,
                           args=(plan, source, first, early, in_q, stop, opts.max_frames))
    enc_state: dict = {}
    enc = threading.Thread(target=encode_loop, name="srgan-encode", daemon=True,
                           args=(plan, out, out_q, stop, enc_state))
    dec.start()
    enc.start()
    try:
        counts = engine_loop(plan, engine, in_q, out_q, stop, dec, enc_state, opts, bar)
        enc.join()
        if "error" in enc_state:
            raise enc_state["error"]
    finally:
        stop.set()
        dec.join()
        enc.join()
    return counts


def progress_bar(vin, plan, max_frames):
    """tqdm bar in frames (it shows frames/s and the ETA); the total is estimated from the header."""
    from tqdm import tqdm

    rate = float(frame_rate(vin))
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
