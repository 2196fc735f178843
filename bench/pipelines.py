"""End-to-end pipelines against the bare engine: how much of a user's wait is the network.

Image pipeline (what ``upscale`` of one file costs): decode a PNG (``imageio.read_image``),
``tiling.upscale`` (tile choice, host->device copies, the engine, copies back), ``to_uint8``
to an HWC array, PNG encode to a temporary file in the output folder
(``imageio.atomic_output`` + Pillow, the path ``write_image`` takes). Each stage is timed
separately (median over the repeats) and the sum is compared with the bare engine call on the
same frame (host frame in, host result out), the two interleaved so drift hits both alike.

Video pipeline: ``srgan_fast.video.measure_pipeline`` on a generated clip (H.264 + AAC, a
photograph panning sideways): ``upscale_video`` end to end (decode, engine, encode, mux) against
the engine stage alone on the same decoded frames. Listed as pending if that function is absent.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from .worker import _short, _write


def _input_picture(h: int, w: int) -> torch.Tensor:
    """A real photograph resized to w x h when the shared data is there, else a pattern."""
    import numpy as np
    from PIL import Image as PILImage

    from .runner import quality_input

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "sr" / "Set14"
    src = root / "lenna.png"
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
    from PIL import Image as PILImage

    from srgan_fast.imageio import Image, atomic_output, read_image, to_uint8, write_image
    from srgan_fast.tiling import auto_tile, upscale

    src = folder / f"pipeline_in_{h}x{w}.png"
    write_image(src, Image(rgb=_input_picture(h, w)))
    dst = folder / f"pipeline_out_{h}x{w}.png"
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
        with atomic_output(dst) as tmp:
            PILImage.fromarray(arr).save(tmp)
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


def make_test_video(path: Path, h: int, w: int, frames: int, fps: int = 25) -> Path:
    """A short H.264 (yuv420p) MP4 with a stereo AAC track: a real picture panning sideways."""
    import av
    import numpy as np

    base = (_input_picture(h, w + frames) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
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


def video_pipeline(engine, h: int, w: int, frames: int, folder: Path, repeats: int = 1) -> dict:
    """srgan_fast.video.measure_pipeline on a generated clip: whole pipeline vs bare engine."""
    import importlib.util

    if importlib.util.find_spec("srgan_fast.video") is None:
        return {"status": "pending", "reason": "srgan_fast/video.py not written yet"}
    try:
        import srgan_fast.video as video
    except Exception as e:  # noqa: BLE001
        return {"status": "error", "reason": f"import srgan_fast.video: {_short(e)}"}
    fn = getattr(video, "measure_pipeline", None)
    if fn is None:
        return {"status": "pending", "reason": "srgan_fast.video has no measure_pipeline() yet"}
    try:
        src = make_test_video(folder / f"pipeline_in_{h}x{w}.mp4", h, w, frames)
        batch = min(4, frames)
        try:
            measured = fn(engine, src, frames=frames, batch=batch, repeats=repeats)
        except TypeError:  # an older measure_pipeline without repeats
            measured = fn(engine, src, frames=frames, batch=batch)
    except Exception as e:  # noqa: BLE001
        return {"status": "error", "reason": _short(e)}
    keep = ("frames", "batch", "repeats", "bare_fps", "pipeline_fps", "efficiency", "io_fps",
            "cpu_efficiency", "engine_busy")
    return {"status": "ok", **{k: measured[k] for k in keep if k in measured}}


def run_pipeline(spec: dict) -> dict:
    from .backends import Case, SkipCase, open_case
    case = Case(**spec["case"])
    out = spec["out"]
    result = {"id": case.id, "label": case.title, "status": "running"}
    _write(out, result)
    try:
        engine = open_case(case, spec["weights"], spec["device"], [[1, *spec["size"]]], spec.get("threads"))
    except SkipCase as e:
        result.update(status="skipped", reason=str(e))
        _write(out, result)
        return result
    result["precision"] = engine.precision
    folder = Path(spec["folder"])
    h, w = spec["size"]
    result["image"] = image_pipeline(engine, h, w, spec.get("repeats", 3), folder)
    result["status"] = "ok"
    _write(out, result)
    result["video"] = video_pipeline(engine, h, w, spec.get("frames", 8), folder,
                                     spec.get("video_repeats", 1))
    engine.close()
    _write(out, result)
    return result
