"""Cut a video into segments at source keyframes, from its packets alone (no decoding).

A segment starts at a keyframe and holds the frames whose timestamps lie in [lo, hi): frames
are assigned by timestamp, so none is lost or doubled at a boundary, and each segment decodes
on its own from its keyframe. Segments are at least ``seconds`` long (the last may be shorter).
"""
from __future__ import annotations

import bisect
import hashlib
import math
import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import SrganError
from ..video.options import VideoOptions
from ..video.source import av, open_input, reason

# Inputs at least this long are cut into segments by default (resumable, spreadable).
AUTO_MIN_SECONDS = 180.0
AUTO_SEGMENT_SECONDS = 60.0


@dataclass(frozen=True)
class Segment:
    index: int
    lo_pts: int | None         # first pts of the segment (None: the range's start)
    hi_pts: int | None         # first pts after it (None: the range's end)
    seek_pts: int              # its first frame's pts: seek there (backward to a keyframe)
    first_frame: int           # index of its first frame in the job
    frames: int
    seconds: float

    def bounds(self):
        return self.lo_pts, self.hi_pts, self.seek_pts

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SourceIndex:
    pts: list                  # every video frame's pts, sorted
    keyframes: list            # keyframe pts, sorted
    time_base: object
    start_time: float          # the container's start, seconds
    video_sha256: str = ""     # the video stream: codec parameters and every packet
    state: tuple = ()          # source_state() while it was read


def source_state(src) -> tuple:
    """(size, mtime in ns) of the source: cheap, and the same on every node of a shared mount.
    The parts check it, so a part made while the file was being replaced is never recorded as
    made from the source the job fingerprinted."""
    st = os.stat(src)
    return st.st_size, st.st_mtime_ns


def _stream_header(vin) -> bytes:
    cc = vin.codec_context
    return repr((cc.name, cc.width, cc.height, getattr(cc.format, "name", None),
                 str(vin.time_base), bytes(cc.extradata or b""))).encode()


def index_source(src: Path) -> SourceIndex:
    """Every video packet's pts and which are keyframes, read by demuxing only, and a hash of
    everything the decoded frames depend on (the parts' fingerprint of the source)."""
    lib = av()
    if not Path(src).is_file():
        raise SrganError(f"{src}: not a regular file, so it cannot be read again to resume; "
                         f"use --segment-seconds 0")
    state = source_state(src)
    inp, vin = open_input(src)
    pts, keys = [], []
    digest = hashlib.sha256(_stream_header(vin))
    try:
        for p in inp.demux(vin):
            if not p.size:
                continue
            if p.pts is None:
                raise SrganError(f"{src}: video packets carry no timestamps, so it cannot be cut "
                                 f"into segments (use --segment-seconds 0)")
            pts.append(p.pts)
            if p.is_keyframe:
                keys.append(p.pts)
            digest.update(struct.pack("<qq?I", p.pts, p.pts if p.dts is None else p.dts,
                                      bool(p.is_keyframe), p.size))
            digest.update(memoryview(p))
        start = (inp.start_time or 0) / 1e6
        tb = vin.time_base
    except lib.FFmpegError as e:
        raise SrganError(f"{src}: corrupt or unreadable video ({reason(e)})") from None
    finally:
        inp.close()
    if source_state(src) != state:
        raise SrganError(f"{src}: changed while it was being read; run again")
    return SourceIndex(sorted(pts), sorted(keys), tb, start, digest.hexdigest(), state)


def _in_range(index: SourceIndex, opts: VideoOptions) -> list:
    """The pts of the frames the job covers (the same float test the decoder applies)."""
    if opts.start is None and opts.duration is None:
        return index.pts
    t0 = (opts.start or 0.0) + index.start_time
    t1 = t0 + opts.duration if opts.duration is not None else None
    tb = index.time_base
    return [p for p in index.pts
            if float(p * tb) >= t0 - 1e-6 and (t1 is None or float(p * tb) < t1 - 1e-6)]


def range_seconds(index: SourceIndex, opts: VideoOptions) -> float:
    pts = _in_range(index, opts)
    return float((pts[-1] - pts[0]) * index.time_base) if len(pts) > 1 else 0.0


def segment_length(asked: float | None, index: SourceIndex, opts: VideoOptions,
                   spread: int = 1) -> float:
    """The segment length to use: ``asked``, or the default for this input (0: one pass).

    By default inputs of 3 minutes and more are cut into 60 s segments; with several workers
    (``spread``) a shorter input is cut too, into about four segments per worker."""
    if asked is not None:
        if not math.isfinite(asked) or asked < 0:
            raise SrganError(f"--segment-seconds must be a number of seconds >= 0 (0 = one "
                             f"pass), got {asked}")
        return float(asked)
    length = range_seconds(index, opts)
    if length >= AUTO_MIN_SECONDS:
        return AUTO_SEGMENT_SECONDS
    if spread > 1:
        return max(1.0, length / (4 * spread))
    return 0.0


def plan_segments(index: SourceIndex, seconds: float, opts: VideoOptions) -> list[Segment]:
    """Segments of at least ``seconds`` over the job's range, each starting at a keyframe."""
    pts = _in_range(index, opts)
    if not pts:
        raise SrganError("no video frames in the requested range")
    tb = index.time_base
    cuts = [0]                       # frame indexes (into pts) where segments start
    for k in index.keyframes:
        i = bisect.bisect_left(pts, k)
        if i >= len(pts) or pts[i] != k or i == 0:
            continue
        if float((k - pts[cuts[-1]]) * tb) >= seconds - 1e-9:
            cuts.append(i)
    segments = []
    for n, i in enumerate(cuts):
        j = cuts[n + 1] if n + 1 < len(cuts) else len(pts)
        lo = pts[i] if n else None
        hi = pts[j] if j < len(pts) else None
        end = pts[j] if j < len(pts) else pts[-1]
        segments.append(Segment(n, lo, hi, pts[i], i, j - i, float((end - pts[i]) * tb)))
    return segments
