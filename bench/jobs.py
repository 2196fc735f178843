"""Scale-out machinery against one plain process, on the same clip and the same folder.

``run_scaleout(...)`` times, one run each:
- video: one pass (the plain process), the same job in segments in one process, with
  ``--workers 2``, and on a local Ray instance (``--ray``, start-up included);
- folder: one process (the overlapped image pipeline), ``--workers 2`` and ``--ray``;
and reports each as a throughput ratio to the plain process (goal: >= 0.9 on one machine,
i.e. the machinery costs under 10%), plus the join's own cost (stream copy of the parts with the
source's audio), the figure a projection for long films needs.

    python -m bench.jobs [--quick] [--backend torch] [--out scaleout.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from srgan_fast.atomic import write_json
from srgan_fast.hardware import has_module


def _weights(folder: Path, weights=None) -> Path:
    """The given or shipped weights; a seeded 4-block generator if neither is there."""
    from srgan_fast.checkpoints import MODELS, DEFAULT_MODEL

    if weights:
        return Path(weights)
    if MODELS[DEFAULT_MODEL].is_file():
        return MODELS[DEFAULT_MODEL]
    import torch

    from srgan_fast.checkpoints import save_generator
    from srgan_fast.model import Generator

    torch.manual_seed(0)
    path = folder / "random_b4.safetensors"
    save_generator(Generator(num_blocks=4).eval(), path, dtype=torch.float32)
    return path


def _video_run(src: Path, dst: Path, common: list, extra: list) -> dict:
    from srgan_fast.jobs.engine_spec import EngineSpec
    from srgan_fast.video.cli import parse_args, run_video

    args = parse_args([str(src), str(dst), *common, *extra])
    t0 = time.perf_counter()
    stats = run_video(args, lambda: EngineSpec.from_args(args).open())
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "frames": stats["frames_out"], "fps": stats["frames_out"] / seconds,
            **{k: stats[k] for k in ("segments", "join_seconds") if k in stats}}


def _folder_run(src: Path, dst: Path, common: list, extra: list) -> dict:
    from srgan_fast import upscale

    t0 = time.perf_counter()
    rc = upscale.main([str(src), str(dst), *common, *extra])
    seconds = time.perf_counter() - t0
    n = len(list(dst.glob("*.png")))
    return {"seconds": seconds, "images": n, "images_per_s": n / seconds, "exit": rc}


def _folder_of_images(folder: Path, n: int, h: int, w: int) -> Path:
    from srgan_fast.image.read import Image, write_image

    from .pipelines import _input_picture

    folder.mkdir()
    pic = _input_picture(h, w + n)
    for i in range(n):
        write_image(folder / f"img{i:03d}.png", Image(rgb=pic[:, :, i:i + w].contiguous()))
    return folder


def _ratios(runs: dict, key: str) -> None:
    base = runs["plain"][key]
    for r in runs.values():
        if key in r:
            r["ratio"] = r[key] / base


def run_scaleout(backend: str = "torch", weights=None, *, h: int = 48, w: int = 64,
                 frames: int = 48, fps: int = 24, gop: int = 12, segment_seconds: float = 0.5,
                 images: int = 8, workers: int = 2, ray: bool | None = None,
                 folder: Path | None = None) -> dict:
    """Time plain / segmented / --workers / --ray runs of one clip and one folder (see above).

    ``ray`` None: included when ray is installed. Returns a JSON-ready dict."""
    from .pipelines import make_test_video

    ray = has_module("ray") if ray is None else ray
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        tmp = Path(tmp)
        wpath = _weights(tmp, weights)
        common = ["--backend", backend, "--weights", str(wpath), "--no-progress", "--overwrite"]
        clip = make_test_video(tmp / "clip.mp4", h, w, frames, fps, gop=gop)
        seg = ["--segment-seconds", str(segment_seconds)]
        video = {"plain": _video_run(clip, tmp / "plain.mp4", common, ["--segment-seconds", "0"])}
        video["segmented"] = _video_run(clip, tmp / "seg.mp4", common, seg)
        video[f"workers{workers}"] = _video_run(clip, tmp / "workers.mp4", common,
                                                seg + ["--workers", str(workers)])
        if ray:
            video["ray"] = _video_run(clip, tmp / "ray.mp4", common, seg + ["--ray"])
        _ratios(video, "fps")
        pics = _folder_of_images(tmp / "images", images, h, w)
        fold = {"plain": _folder_run(pics, tmp / "o_plain", common, [])}
        fold[f"workers{workers}"] = _folder_run(pics, tmp / "o_workers", common,
                                                ["--workers", str(workers)])
        if ray:
            fold["ray"] = _folder_run(pics, tmp / "o_ray", common, ["--ray"])
        _ratios(fold, "images_per_s")
    join = video["segmented"]
    return {"settings": {"backend": backend, "weights": str(wpath.name), "lr_size": [w, h],
                         "frames": frames, "fps": fps, "gop": gop,
                         "segment_seconds": segment_seconds, "images": images,
                         "workers": workers},
            "video": video, "folder": fold,
            "join": {"seconds": join["join_seconds"], "segments": join["segments"],
                     "seconds_per_segment": join["join_seconds"] / join["segments"],
                     "seconds_per_frame": join["join_seconds"] / join["frames"]}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.jobs", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="torch", help="engine backend (default: %(default)s)")
    p.add_argument("--weights", default=None,
                   help="generator weights (default: the shipped model, else a random 4-block one)")
    p.add_argument("--quick", action="store_true",
                   help="a 64x48 clip of 48 frames and 8 images (default: 128x96, 96 frames, 16)")
    p.add_argument("--no-ray", action="store_true", help="leave Ray out (default: when installed)")
    p.add_argument("--out", default=None, help="write the results here as JSON (default: stdout)")
    args = p.parse_args(argv)
    size = dict(h=48, w=64, frames=48, images=8) if args.quick else \
        dict(h=96, w=128, frames=96, images=16)
    result = run_scaleout(args.backend, args.weights, ray=False if args.no_ray else None, **size)
    text = json.dumps(result, indent=1)
    if args.out:
        write_json(args.out, result, indent=1)
    print(text, file=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
