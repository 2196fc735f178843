"""The three pipeline stages, joined by bounded queues:

    decode thread --(LR frames)--> engine (calling thread) --(SR frames)--> encode thread

- decode: demux, decode and convert each frame to an RGB HWC integer tensor with the frame's own
  colour matrix and range (the only YUV -> RGB conversion). Audio/subtitle packets read between
  two frames ride along with the later one, so they reach the muxer in order.
- engine: stack a batch, move it to ``engine.torch_device`` and convert integer -> float there
  (and back after), so a GPU engine gets raw bytes over the bus; ``tiling.upscale`` when large.
- encode: RGB -> YUV with the same matrix and range, stamp each frame with its source timestamp
  (variable frame rate survives), encode, and mux the riders.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction

import torch

from ..errors import SrganError
from ..handoff import put
from ..image.pixels import quantize, to_uint8
from .plan import Plan
from .source import av, check_complete, frame_rate, frame_time, packet_time, reason


@dataclass
class Item:
    """One video frame travelling through the pipeline, plus what was demuxed before it."""
    pixels: torch.Tensor | None      # HWC integer RGB: LR after decode, SR after the engine
    pts: int | None = None           # in the encoder's time base
    riders: list = field(default_factory=list)   # (kind, out_index, packet or frame)
    end: bool = False                # the last item: flush the encoders


class Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def get(q: queue.Queue, stop: threading.Event, other: threading.Thread | None = None):
    """Blocking get that returns None as soon as the pipeline is stopping (Ctrl-C, an error)."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if other is not None and not other.is_alive() and q.empty():
                return Failure(RuntimeError("a pipeline stage ended unexpectedly"))
    return None


# ---------------------------------------------------------------------------- decode

class _Clock:
    """Source pts -> output pts: shifted to the range start, rounded for CFR containers, and
    strictly increasing (encoders need that); frames without timestamps are counted."""

    def __init__(self, plan: Plan):
        vin = plan.vin
        self.plan, self.tb = plan, vin.time_base
        self.step = max(1, round(1 / (frame_rate(vin) * vin.time_base)))   # one frame
        self.offset = round(plan.start / vin.time_base) if plan.start is not None else 0
        if plan.origin_pts is not None:       # a part: its own first frame is at 0
            self.offset = plan.origin_pts
        self.last_pts = self.last_out = self.last_end = None

    def source_pts(self, frame) -> int:
        pts = frame.pts
        if pts is None:     # some containers (AVI) carry no timestamps: count frames
            pts = self.last_pts + self.step if self.last_pts is not None else self.offset
        return pts

    def out_pts(self, frame, pts: int) -> int:
        self.last_pts = pts
        self.last_end = (pts + (frame.duration or self.step)) * self.tb
        out = pts - self.offset
        if self.plan.cfr:
            out = round(out * self.tb / self.plan.enc_time_base)
        if self.last_out is not None and out <= self.last_out:
            out = self.last_out + 1
        self.last_out = out
        return out


def _frame_place(plan: Plan, frame, pts: int) -> str:
    """'before', 'in' or 'after' the range (and the segment) this run covers."""
    t = frame_time(frame)
    if (plan.start is not None and t < plan.start - 1e-6) or \
            (plan.lo_pts is not None and pts < plan.lo_pts):
        return "before"
    if (plan.end is not None and t >= plan.end - 1e-6) or \
            (plan.hi_pts is not None and pts >= plan.hi_pts):
        return "after"
    return "in"


def decode_loop(plan: Plan, source, first, early, in_q, stop, max_frames) -> None:
    """Decode thread: frames -> integer RGB tensors, packets -> riders; then an end item."""
    lib = av()
    clock, riders, n = _Clock(plan), [], 0
    ends: dict = {}      # stream index -> a packet past the range end was seen
    carried = (*plan.copy, *plan.reencode)
    video_done = False
    try:
        riders.extend(_riders(plan, early, ends))
        for kind, obj in _chain([("video", first)], source):
            if stop.is_set():
                return
            if kind == "packet":
                riders.extend(_riders(plan, [obj], ends))
                # After the range's last frame, read on only until every carried stream has
                # passed the end too (they are interleaved a little behind or ahead of video).
                if video_done and (all(ends.get(i) for i in carried)
                                   or packet_time(obj) > plan.end + 5):
                    break
                continue
            if video_done:
                continue
            pts = clock.source_pts(obj)
            place = _frame_place(plan, obj, pts)
            if place == "before":
                continue
            if (max_frames and n >= max_frames) or (place == "after" and not carried):
                break
            if place == "after":
                video_done = True
                continue
            if obj.is_corrupt:
                raise SrganError(f"{plan.src}: corrupt video frame at {frame_time(obj):.3f} s")
            item = Item(to_tensor(obj, plan), clock.out_pts(obj, pts), riders)
            riders = []
            n += 1
            if not put(in_q, item, stop):
                return
        if plan.end is None and plan.hi_pts is None and not max_frames:
            check_complete(plan.src, plan.vin, clock.last_end)
        put(in_q, Item(None, riders=riders, end=True), stop)
    except SrganError as e:
        put(in_q, Failure(e), stop)
    except lib.FFmpegError as e:
        put(in_q, Failure(SrganError(f"{plan.src}: corrupt or unreadable video ({reason(e)})")), stop)
    except BaseException as e:   # a bug: hand it to the calling thread with its traceback
        put(in_q, Failure(e), stop)


def _chain(*iterables):
    for it in iterables:
        yield from it


def _riders(plan: Plan, packets, ends: dict) -> list:
    """Packets to copy and decoded audio to re-encode, inside the range, re-timed to it."""
    out = []
    for p in packets:
        i = p.stream.index
        if i not in plan.copy and i not in plan.reencode:
            continue
        if p.size == 0:                  # end of stream: flushes a decoder, nothing to copy
            if i in plan.reencode:
                out.extend(("audio", i, f) for f in retime(p.stream.decode(p), plan.start))
            continue
        t = packet_time(p)
        if plan.start is not None and t < plan.start - 1e-6:
            continue
        if plan.end is not None and t >= plan.end - 1e-6:
            ends[i] = True
            continue
        if i in plan.copy:
            shift_packet(p, plan.start)
            out.append(("packet", i, p))
        else:
            out.extend(("audio", i, f) for f in retime(p.stream.decode(p), plan.start))
    return out


def shift_packet(p, start: float | None) -> None:
    """Move a copied packet's timestamps so the range starts at 0."""
    if start is not None:
        shift = round(start / p.stream.time_base)
        if p.pts is not None:
            p.pts -= shift
        if p.dts is not None:
            p.dts -= shift


def retime(frames, start: float | None):
    """Decoded audio -> timestamps in 1/sample_rate, shifted to the range start."""
    for f in frames:
        if f.pts is not None:
            t = f.pts * f.time_base - Fraction(start or 0).limit_denominator(10**6)
            f.pts = round(t * f.sample_rate)
            f.time_base = Fraction(1, f.sample_rate)
        yield f


def to_tensor(frame, plan: Plan) -> torch.Tensor:
    """The one YUV -> RGB conversion: with the source's matrix and range, into an integer tensor."""
    if plan.src_rgb:
        arr = frame.to_ndarray(format=plan.rgb_format)
    else:
        arr = frame.to_ndarray(format=plan.rgb_format, src_colorspace=plan.matrix,
                               src_color_range=plan.color_range)
    return torch.from_numpy(arr)


# ---------------------------------------------------------------------------- engine

def upscale_frames(engine, frames: torch.Tensor, *, max_value: float = 255.0, tile=None,
                   budget: int | None = None) -> torch.Tensor:
    """The engine stage: N x H x W x 3 integer RGB (CPU) -> 4x integer RGB (CPU).

    The integer -> float conversion and back happen on ``engine.torch_device``. Without a fixed
    ``tile``, frames go to the engine whole, as many at a time as the memory ``budget`` allows;
    a frame too large for it alone is tiled exactly by ``tiling.upscale``.
    """
    from ..image import tiling

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


def _quantize(sr: torch.Tensor, max_value: float) -> torch.Tensor:
    """8-bit frames, or 16-bit containers of 10/12-bit video (max_value 65535)."""
    return to_uint8(sr) if max_value == 255.0 else quantize(sr, 16).to(torch.uint16)


def engine_loop(plan: Plan, engine, in_q, out_q, stop, dec, enc_state, opts, bar) -> dict:
    """Calling thread: batch frames, upscale on the engine's device, pass results on in order."""
    pending: list[Item] = []
    counts = {"frames_in": 0, "frames_out": 0, "engine_seconds": 0.0, "wait_seconds": 0.0}

    def stopped():
        return enc_state.get("error") or SrganError("pipeline stopped")

    def flush():
        if not pending:
            return
        t = time.perf_counter()
        sr = upscale_frames(engine, torch.stack([it.pixels for it in pending]),
                            max_value=plan.max_value, tile=opts.tile, budget=opts.budget)
        counts["engine_seconds"] += time.perf_counter() - t
        for it, img in zip(pending, sr):
            it.pixels = img
            if not put(out_q, it, stop):
                raise stopped()
        counts["frames_out"] += len(pending)
        if bar is not None:
            bar.update(len(pending))
        pending.clear()

    while True:
        t = time.perf_counter()
        item = get(in_q, stop, dec)
        counts["wait_seconds"] += time.perf_counter() - t
        if isinstance(item, Failure):
            raise item.exc
        if item is None:
            raise stopped()
        if item.end:
            flush()
            if not put(out_q, item, stop):
                raise stopped()
            return counts
        if pending and pending[0].pixels.shape != item.pixels.shape:
            (h0, w0), (h1, w1) = pending[0].pixels.shape[:2], item.pixels.shape[:2]
            raise SrganError(f"{plan.src}: frame size changes mid-stream ({w0}x{h0} -> {w1}x{h1}); "
                             f"one output stream cannot hold both")
        pending.append(item)
        counts["frames_in"] += 1
        if len(pending) >= opts.batch:
            flush()


# ---------------------------------------------------------------------------- encode

def _video_frame(lib, plan: Plan, item: Item):
    cc = plan.out_video.codec_context
    vf = lib.VideoFrame.from_numpy_buffer(item.pixels.numpy(), format=plan.rgb_format)
    if plan.out_rgb:
        vf = vf.reformat(format=plan.pix_fmt)
    else:
        vf = vf.reformat(format=plan.pix_fmt, dst_colorspace=plan.matrix,
                         dst_color_range=plan.color_range)
    vf.colorspace, vf.color_range = cc.colorspace, cc.color_range
    vf.color_primaries, vf.color_trc = cc.color_primaries, cc.color_trc
    vf.pts, vf.time_base = item.pts, plan.enc_time_base
    return vf


def encode_loop(plan: Plan, out, out_q, stop, state: dict) -> None:
    """Encode thread: RGB -> YUV with the source's matrix, encode, mux riders; flush at the end."""
    lib = av()
    ovs = plan.out_video
    try:
        while True:
            item = get(out_q, stop)
            if item is None:
                return
            if item.pixels is not None:
                out.mux(ovs.encode(_video_frame(lib, plan, item)))
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
    except lib.FFmpegError as e:
        state["error"] = SrganError(f"encoding failed ({reason(e)})")
    except BaseException as e:
        state["error"] = e
    finally:
        if "error" in state:
            stop.set()
