"""Join finished parts into the final file by stream copy, with the source's audio and
subtitles taken once for the whole range (copied, or re-encoded where the container needs it),
so there are no gaps or drift at the joins."""
from __future__ import annotations

import heapq
import math
from fractions import Fraction
from pathlib import Path

from ..errors import SrganError
from ..video.plan import Plan, copy_video_tags, plan_other_streams, range_bounds
from ..video.source import av, demux, first_frame, open_input, packet_time, reason
from ..video.stages import _riders


def _to_out(ts, tb, shift, out_tb) -> int:
    """Part timestamp + the part's start (both exact fractions of a second) in ``out_tb``."""
    return math.floor((Fraction(ts) * tb + shift) / out_tb + Fraction(1, 2))


def _video_packets(parts, ovs):
    """The parts' packets in order, in the output stream's time base, shifted to their place
    (each part starts at 0), with decode timestamps strictly increasing across joins."""
    lib = av()
    last = None
    for path, shift in parts:
        with lib.open(str(path)) as c:
            s = c.streams.video[0]
            for p in c.demux(s):
                if not p.size:
                    continue
                p.pts = _to_out(p.pts, s.time_base, shift, ovs.time_base)
                p.dts = _to_out(p.dts, s.time_base, shift, ovs.time_base) \
                    if p.dts is not None else p.pts
                if last is not None and p.dts <= last:
                    p.dts = last + 1
                if p.dts > p.pts:
                    raise SrganError(f"{path}: cannot join this part (timestamps overlap the "
                                     f"previous part); use --segment-seconds 0")
                last = p.dts
                p.time_base = ovs.time_base
                p.stream = ovs
                yield float(p.dts * ovs.time_base), 0, "video", p


def _source_riders(inp, plan: Plan):
    """The carried streams' packets (or re-encoded audio frames) inside the range, in order."""
    carried = [inp.streams[i] for i in (*plan.copy, *plan.reencode)]
    if not carried:
        return
    ends: dict = {}
    n = 0
    for p in inp.demux(*carried):
        t = packet_time(p)
        for kind, index, obj in _riders(plan, [p], ends):
            n += 1
            yield t - (plan.start or 0), n, kind, (index, obj)
        if plan.end is not None and (all(ends.get(s.index) for s in carried)
                                     or t > plan.end + 5):
            break


def join(src: Path, parts: list, tmp: Path, dst: Path, opts, log) -> dict:
    """Write ``tmp`` (named like ``dst``) from the parts and the source's other streams.

    ``parts``: (path, first_pts) per part in order, first_pts the source pts of its first frame."""
    lib = av()
    inp, vin = open_input(src)
    probe_in, probe_v = open_input(src)
    try:
        first, _ = first_frame(demux(probe_in, probe_v, video_only=True), probe_in, probe_v,
                               src, None)
    finally:
        probe_in.close()
    try:
        out = lib.open(str(tmp), "w")
        with lib.open(str(parts[0][0])) as p0:
            ovs = out.add_stream_from_template(p0.streams.video[0])
        copy_video_tags(inp, vin, out, ovs, first)
        start, end = range_bounds(inp, opts)
        origin = round(start / vin.time_base) if start is not None else 0   # as in one pass
        parts = [(path, (first - origin) * vin.time_base) for path, first in parts]
        plan = Plan(src=src, vin=vin, rgb_format="rgb24", max_value=255.0, matrix=1,
                    color_range=1, pix_fmt="", enc_time_base=vin.time_base, start=start, end=end)
        plan_other_streams(lib, inp, vin, out, dst, plan, log)
        out.start_encoding()
        frames = 0
        for _t, _n, kind, obj in heapq.merge(_video_packets(parts, ovs), _source_riders(inp, plan)):
            if kind == "video":
                frames += 1
                out.mux(obj)
            elif kind == "packet":
                obj[1].stream = plan.copy[obj[0]]
                out.mux(obj[1])
            else:
                out.mux(plan.reencode[obj[0]].encode(obj[1]))
        for o in plan.reencode.values():
            out.mux(o.encode(None))
        out.close()
    except lib.FFmpegError as e:
        raise SrganError(f"{dst}: joining the parts failed ({reason(e)})") from None
    finally:
        inp.close()
    return {"frames": frames, "streams": plan.streams, "warnings": plan.warnings}
