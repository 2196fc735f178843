"""The output plan: every output stream, the colour conversion and the time range, fixed before
the first frame is encoded (a muxer needs all its streams before it writes a packet)."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..errors import SrganError
from ..model import SCALE
from .options import VideoOptions
from .source import frame_rate, reason

_UNSPECIFIED = 2              # AVCOL_SPC/TRC/PRI_UNSPECIFIED
# AVColorSpace -> swscale's SWS_CS_* matrix id (FCC 4, BT.601 5, SMPTE240M 7, BT.2020 9).
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
# Encoder option that sets constant quality, per encoder.
CRF_OPTION = {"libx264": "crf", "libx264rgb": "crf", "libx265": "crf", "libvpx-vp9": "crf",
              "libvpx": "crf", "libsvtav1": "crf", "libaom-av1": "crf", "h264_nvenc": "cq",
              "hevc_nvenc": "cq", "av1_nvenc": "cq"}
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
# Container metadata the muxer writes itself; copying it would describe the input, not the output.
_MUXER_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration"}


@dataclass
class Plan:
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
    start: float | None = None       # absolute range bounds in seconds (None: whole file)
    end: float | None = None
    lo_pts: int | None = None        # a segment's bounds in source pts (None: the range's)
    hi_pts: int | None = None
    origin_pts: int | None = None    # source pts that becomes output pts 0 (None: range start)
    warnings: list = field(default_factory=list)
    streams: list = field(default_factory=list)  # per non-video input stream: what happened


def range_bounds(inp, opts: VideoOptions):
    """Absolute (start, end) seconds of the requested range, or (None, None) for the whole file."""
    if opts.start is None and opts.duration is None:
        return None, None
    t_start = (opts.start or 0.0) + (inp.start_time or 0) / 1e6
    return t_start, (t_start + opts.duration if opts.duration is not None else None)


def is_yuv(pix_fmt: str) -> bool:
    return pix_fmt.startswith(("yuv", "nv", "gray", "p0", "p2", "p4", "y2", "uyvy", "yuyv"))


def _video_stream(av, vin, out, dst, first, opts: VideoOptions, deep: bool):
    """Add the encoder's stream with its pixel format, time base and quality options."""
    codec = opts.codec or ("libvpx-vp9" if dst.suffix.lower() == ".webm" else "libx264")
    try:
        ovs = out.add_stream(codec, rate=frame_rate(vin))
    except (av.FFmpegError, ValueError) as e:
        raise SrganError(f"{dst}: cannot encode with {codec!r} here ({reason(e)})") from None
    supported = [f.name for f in (ovs.codec_context.codec.video_formats or [])]
    pix_fmt = opts.pix_fmt
    if pix_fmt is None:
        pix_fmt = "yuv420p10le" if deep and "yuv420p10le" in supported else "yuv420p"
        if supported and pix_fmt not in supported:
            pix_fmt = supported[0]
    elif supported and pix_fmt not in supported:
        raise SrganError(f"{codec} cannot encode pixel format {pix_fmt!r} "
                         f"(it takes {', '.join(supported)})")
    ovs.width, ovs.height, ovs.pix_fmt = first.width * SCALE, first.height * SCALE, pix_fmt

    # Timestamps: keep the source's time base. AVI stores no timestamps, only a frame rate:
    # there frames get 1/fps units (rounded) and no B-frames, whose reordering AVI cannot express.
    cfr = out.format.name == "avi"
    tb = Fraction(1, 1) / frame_rate(vin) if cfr else vin.time_base
    ovs.codec_context.time_base = tb
    ovs.time_base = tb
    if cfr:
        ovs.codec_context.max_b_frames = 0
    options = dict(opts.encoder_options)
    threads = options.pop("threads", None)
    # No thread count and the encoder's own preset by default: x264 medium at its own thread count
    # kept a CPU job at 1.03x the bare engine (bf16 OpenVINO, 640x272 -> 2560x1088, 2 cores),
    # where one thread gave 1.10x and veryfast 7% larger files (bench/clip_job.py, README).
    if threads:         # a fixed thread count makes the encoder's output reproducible
        ovs.codec_context.thread_count = int(threads)
    if codec in CRF_OPTION and opts.crf is not None:
        options.setdefault(CRF_OPTION[codec], f"{opts.crf:g}")
        if codec.startswith("libvpx"):
            options.setdefault("b", "0")      # VP9 constant-quality mode needs bitrate 0
    if opts.preset:
        options.setdefault("preset", opts.preset)
    ovs.codec_context.options = options
    return ovs, pix_fmt, tb, cfr


def copy_video_tags(inp, vin, out, ovs, first) -> None:
    """Rotation (display matrix) and metadata of the source's video stream and container."""
    # The pixels are upscaled as stored, so the same display matrix applies.
    # by name: PyAV 18.1.0 iterates side data as entries, 18.1.1 as keys; both look up names
    matrix = first.side_data.get("DISPLAYMATRIX")
    if matrix is not None:
        import numpy as np
        ovs.set_display_matrix(np.frombuffer(bytes(matrix), np.int32).tolist())
    ovs.metadata.update({k: v for k, v in vin.metadata.items() if k.lower() not in _MUXER_TAGS})
    out.metadata.update({k: v for k, v in inp.metadata.items() if k.lower() not in _MUXER_TAGS})


def plan_output(av, inp, vin, out, src, dst, first, opts: VideoOptions, log,
                others: bool = True) -> Plan:
    """Create every output stream (all must exist before the first packet is written).

    ``others`` False plans the video stream alone (a segment's part file)."""
    in_fmt = first.format
    deep = max((c.bits for c in in_fmt.components), default=8) > 8
    src_rgb = not is_yuv(in_fmt.name)
    ovs, pix_fmt, tb, cfr = _video_stream(av, vin, out, dst, first, opts, deep)

    # Colour: decode and encode with one matrix and range, and say so in the output. An untagged
    # source is read the way players read it (BT.709 from 720 lines up, else BT.601); the 4x
    # output would be guessed as BT.709, so it is tagged explicitly.
    spc = first.colorspace
    if src_rgb:
        spc = 1                                  # RGB source: no matrix to keep; use BT.709
    elif spc not in _SWS_MATRIX:
        spc = 1 if first.height >= 720 else 6
    rng = 2 if first.color_range == 2 or in_fmt.name.startswith("yuvj") else 1
    if src_rgb:
        rng = 1
    cc = ovs.codec_context
    out_rgb = not is_yuv(pix_fmt)
    cc.colorspace, cc.color_range = (0, 2) if out_rgb else (spc, rng)    # 0: AVCOL_SPC_RGB
    if first.color_primaries != _UNSPECIFIED:
        cc.color_primaries = first.color_primaries
    if first.color_trc != _UNSPECIFIED:
        cc.color_trc = first.color_trc
    with contextlib.suppress(AttributeError, TypeError, ValueError):
        if vin.sample_aspect_ratio:
            cc.sample_aspect_ratio = vin.sample_aspect_ratio
    copy_video_tags(inp, vin, out, ovs, first)

    t_start, t_end = range_bounds(inp, opts)
    plan = Plan(src=src, vin=vin, rgb_format="rgb48le" if deep else "rgb24",
                max_value=65535.0 if deep else 255.0, matrix=_SWS_MATRIX[spc], color_range=rng,
                pix_fmt=pix_fmt, enc_time_base=tb, start=t_start, end=t_end)
    plan.out_video, plan.cfr, plan.src_rgb, plan.out_rgb = ovs, cfr, src_rgb, out_rgb
    if others:
        plan_other_streams(av, inp, vin, out, dst, plan, log)
    return plan


def plan_other_streams(av, inp, vin, out, dst, plan: Plan, log) -> None:
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
        target = _reencode_audio(av, out, dst, s, name)
        plan.reencode[s.index] = target[0]
        what["action"] = f"re-encoded to {target[1]}"
        warn(f"{dst.suffix} cannot hold {name} audio (stream #{s.index}); re-encoding it to {target[1]}")


def _reencode_audio(av, out, dst, s, name):
    """An audio encoder stream for input stream ``s`` in the container's default audio codec."""
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
        raise SrganError(f"{dst}: cannot carry audio stream #{s.index} ({name}): {reason(e)}") from None
    return o, target


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
