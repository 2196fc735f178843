"""End-to-end pipelines against the bare engine: how much of a user's wait is the network.

Image pipeline (what ``upscale`` of one file costs): decode a PNG (``image.read.read_image``),
``tiling.upscale`` (tile choice, host->device copies, the engine, copies back), ``to_uint8``
to an HWC array, PNG encode with the product's writer (``image.write.write_canvas``: streamed,
zlib level 1, atomic). Each stage is timed
separately (median over the repeats) and the sum is compared with the bare engine call on the
same frame (host frame in, host result out), the two interleaved so drift hits both alike.

Video pipeline: ``measure_pipeline`` on a generated clip (H.264 + AAC, a photograph panning
sideways): ``srgan_fast.video.upscale_video`` end to end (decode, engine, encode, mux) against the
engine stage alone on the same decoded frames, and against a free engine (pixel replication) for
the rate decoding and encoding alone sustain.

The worker process (``bench.worker``) runs these and writes the results; this module imports
nothing from it, so the two never form a cycle.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

from srgan_fast.errors import SrganError
from srgan_fast.model import SCALE


def _input_picture(h: int, w: int) -> torch.Tensor:
    """A real photograph resized to w x h when the shared data is there, else a pattern."""
    import numpy as np
    from PIL import Image as PILImage

    from .runner import quality_input

    from srgan_fast.eval.datasets import default_root

    src = default_root() / "Set14" / "lenna.png"
    if src.is_file():
        with PILImage.open(src) as im:
            arr = torch.from_numpy(np.asarray(im.convert("RGB").resize((w, h), PILImage.BICUBIC)).copy())
        return arr.permute(2, 0, 1).float() / 255.0
    lr, _, _ = quality_input()
    return torch.nn.functional.interpolate(lr, size=(h, w), mode="bilinear",
                                           align_corners=False)[0].clamp(0, 1)


def _median(xs):
    from .runner import percentile
    return percentile(xs, 50)


def image_pipeline(engine, h: int, w: int, repeats: int, folder: Path) -> dict:
    from srgan_fast.image.read import Image, read_image, to_uint8, write_image
    from srgan_fast.image.write import output_spec, write_canvas
    from srgan_fast.image.tiling import auto_tile, upscale

    src = folder / f"pipeline_in_{h}x{w}.png"
    write_image(src, Image(rgb=_input_picture(h, w)))
    dst = folder / f"pipeline_out_{h}x{w}.png"
    spec = output_spec(dst, gray=False, alpha=False, bits=8)
    lr = read_image(src).rgb[None]
    cuda = engine.torch_device.type == "cuda"

    def bare():
        x = lr.to(engine.torch_device)  # the bare engine still gets a host frame, like the pipeline
        out = engine(x).cpu()
        return out

    def pipeline(times):
        t0 = time.perf_counter()
        img = read_image(src)
        t1 = time.perf_counter()
        sr = upscale(engine, img.rgb[None], out_device=torch.device("cpu"))
        t2 = time.perf_counter()
        arr = to_uint8(sr[0]).permute(1, 2, 0).contiguous().numpy()
        t3 = time.perf_counter()
        write_canvas(dst, arr, spec)  # the product's writer: streamed PNG, level 1, atomic
        t4 = time.perf_counter()
        for k, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times[k].append(dt * 1e3)

    stages = {"decode": [], "upscale": [], "to_uint8": [], "encode": []}
    bare(), pipeline({k: [] for k in stages})  # warm-up: lazy init, first-shape costs
    bare_ms = []
    # Interleaved, so slow drift (other load, clocks) hits both figures alike.
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        bare()
        bare_ms.append((time.perf_counter() - t0) * 1e3)
        pipeline(stages)
    med = {f"{k}_ms": _median(v) for k, v in stages.items()}
    total = sum(med.values())
    b = _median(bare_ms)
    return {"h": h, "w": w, "repeats": repeats, **med, "total_ms": total,
            "bare_engine_ms": b, "engine_share": b / total, "overhead_x": total / b,
            "tile": auto_tile(engine, h, w), "output_bytes": dst.stat().st_size}


def make_test_video(path: Path, h: int, w: int, frames: int, fps: int = 25,
                    gop: int | None = None) -> Path:
    """A short H.264 (yuv420p) MP4 with a stereo AAC track: a real picture panning sideways;
    ``gop``: a keyframe every that many frames (so the clip can be cut into segments)."""
    import av
    import numpy as np

    base = (_input_picture(h, w + frames) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"} if gop else {}
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps,
                           options=options)
        v.width, v.height, v.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        a = out.add_stream("aac", rate=48000)
        a.layout = "stereo"
        for i in range(frames):
            rgb = np.ascontiguousarray(base[:v.height, i:i + v.width])
            out.mux(v.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(v.encode())
        t = np.arange(int(48000 * frames / fps)) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = np.stack([tone[start:start + 1024]] * 2)  # planar stereo
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, start
            out.mux(a.encode(af))
        out.mux(a.encode())
    return path


class NearestEngine:
    """Pixel replication: an engine that costs almost nothing, to time the pipeline's own stages."""
    name, precision, device = "nearest", "fp32", "cpu"
    torch_device = torch.device("cpu")
    radius, bytes_per_lr_pixel = 0, 64

    def __init__(self):
        from srgan_fast.engines.base import ShapeRange
        self.shapes = ShapeRange()

    def __call__(self, lr):
        return lr.repeat_interleave(SCALE, 2).repeat_interleave(SCALE, 3)

    def info(self):
        return {"backend": self.name}

    def close(self):
        pass


def _decoded_frames(src: Path, frames: int | None) -> list:
    from srgan_fast.video.source import open_input

    inp, vin = open_input(src)
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
    return lr


def measure_pipeline(engine, src, frames: int | None = 16, *, tile=None, batch: int = 4,
                     repeats: int = 1, **options) -> dict:
    """Frames/s of the whole video pipeline next to the bare engine's on the same frames.

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
    from srgan_fast.video import upscale_frames, upscale_video

    src = Path(src)
    lr = _decoded_frames(src, frames)
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
                                  progress=False, max_frames=len(lr), log=lambda _m: None,
                                  overwrite=True, **options)
            return stats["seconds"], time.process_time() - c, stats

        upscale_frames(engine, torch.stack(lr[:batch]), tile=tile, budget=budget)   # warm-up
        io_seconds, _, _ = pipeline(NearestEngine())
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


def video_pipeline(engine, h: int, w: int, frames: int, folder: Path, repeats: int = 1) -> dict:
    """``measure_pipeline`` on a generated clip: whole pipeline vs bare engine."""
    src = make_test_video(folder / f"pipeline_in_{h}x{w}.mp4", h, w, frames)
    measured = measure_pipeline(engine, src, frames=frames, batch=min(4, frames), repeats=repeats)
    keep = ("frames", "batch", "repeats", "bare_fps", "pipeline_fps", "efficiency", "io_fps",
            "cpu_efficiency", "engine_busy")
    return {"status": "ok", **{k: measured[k] for k in keep if k in measured}}
