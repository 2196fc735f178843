"""Upscale images, folders of images, or videos 4x: ``python -m srgan_fast.upscale INPUT OUTPUT``.

Data flows one way: file -> ``Image`` (RGB float [0, 1]) -> engine (tiled exactly when the frame
is large) -> ``Image`` -> file. Grey images come back grey, 16-bit images 16-bit, and an alpha
plane is upscaled separately with bicubic. Outputs are written under a temporary name and renamed
when complete; an input is never overwritten.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import tiling
from .errors import SrganError, cli
from .imageio import IMAGE_EXTS, Image, list_images, read_image, same_file, write_image
from .imresize import imresize

from .model import SCALE  # noqa: E402 - the one home of the scale factor


def upscale_image(engine, img: Image, tile: int | None = None, budget: int | None = None) -> Image:
    """Upscale one ``Image`` with ``engine``; returns a new ``Image`` 4x larger."""
    sr = tiling.upscale(engine, img.rgb[None], tile=tile, budget=budget,
                        out_device=torch.device("cpu"))[0]
    alpha = None
    if img.alpha is not None:
        alpha = imresize(img.alpha[None], scale=SCALE)[0].clamp(0, 1).float()
    return Image(rgb=sr, alpha=alpha, gray=img.gray, bits=img.bits)


def open_engine_from_args(args):
    """The engine the user asked for: a built artifact (--engine) or backend + precision."""
    from . import engines

    if args.engine:
        if not hasattr(engines, "load_artifact"):
            raise SrganError("--engine needs the build extras: pip install 'srgan_fast[cpu]'")
        engine = engines.load_artifact(args.engine)
    else:
        from .checkpoints import model_weights
        engine = engines.open_engine(args.backend, args.precision,
                                     weights=model_weights(args.model, args.weights))
    asked = "" if engine.requested_precision == engine.precision else \
        f" (asked {engine.requested_precision})"
    print(f"engine: {engine.name} {engine.precision}{asked} on {engine.device}", file=sys.stderr)
    return engine


def _plan(inp: Path, out: Path, overwrite: bool):
    """[(src, dst)] for a file or a folder, refusing anything that would overwrite an input."""
    if not inp.exists():
        raise SrganError(f"{inp}: no such file or folder")
    if inp.is_dir():
        if out.exists() and not out.is_dir():
            raise SrganError(f"{out}: input is a folder, so the output must be a folder")
        if same_file(inp, out):
            raise SrganError(f"{out}: output folder is the input folder; choose another")
        files = list_images(inp)
        if not files:
            raise SrganError(f"{inp}: no images ({', '.join(sorted(IMAGE_EXTS))})")
        out.mkdir(parents=True, exist_ok=True)
        return [(f, out / f.name) for f in files]
    if out.is_dir():
        out = out / inp.name
    if out.suffix.lower() not in IMAGE_EXTS:
        raise SrganError(f"{out}: unsupported output extension (use one of {', '.join(sorted(IMAGE_EXTS))})")
    if same_file(inp, out):
        raise SrganError(f"{out}: output would overwrite the input")
    if out.exists() and not overwrite:
        raise SrganError(f"{out}: exists (use --overwrite to replace it)")
    return [(inp, out)]


def parse_args(argv):
    from . import engines

    p = argparse.ArgumentParser(prog="python -m srgan_fast.upscale", description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="image, folder of images, or video")
    p.add_argument("output", help="output file or folder")
    p.add_argument("--backend", default="auto", choices=("auto",) + engines.BACKENDS,
                   help="auto: TensorRT on an NVIDIA GPU, else OpenVINO on the CPU")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16", "int8"))
    p.add_argument("--engine", help="a built engine artifact (python -m srgan_fast.build)")
    from .checkpoints import DEFAULT_MODEL, MODELS
    p.add_argument("--model", choices=tuple(MODELS), default=DEFAULT_MODEL,
                   help="shipped generator: srresnet (MSE: highest PSNR, smooth) or srgan "
                        "(adversarial: restores texture) (default: %(default)s)")
    p.add_argument("--weights", help="generator weights file; overrides --model")
    p.add_argument("--tile", type=int, default=None,
                   help="tile size in LR pixels (default: from the memory budget; 0 = whole frame)")
    p.add_argument("--memory-budget", type=int, default=None, metavar="MiB",
                   help="working memory for one tile (default: 2 GiB on CPU, half the free GPU memory)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--no-progress", action="store_true")
    try:
        from . import video
        video.add_video_arguments(p)
    except ImportError:  # video support is an extra (PyAV)
        pass
    return p.parse_args(argv)


@cli
def main(argv=None):
    args = parse_args(argv)
    if args.tile is not None and args.tile < 0:
        raise SrganError("--tile must be >= 0")
    budget = args.memory_budget * 2**20 if args.memory_budget else None
    inp, out = Path(args.input), Path(args.output)
    if inp.suffix.lower() in _video_exts():
        from . import video
        video.run_video(args, lambda: open_engine_from_args(args))  # checks paths before the engine
        return 0

    jobs = _plan(inp, out, args.overwrite)
    if inp.is_dir() and not args.overwrite:
        skipped = [d for _s, d in jobs if d.exists()]
        jobs = [(s, d) for s, d in jobs if not d.exists()]
        if skipped:
            print(f"skipping {len(skipped)} image(s) already in {out} (--overwrite to redo)", file=sys.stderr)
    if not jobs:
        return 0
    # A single bad file fails before the (possibly slow) engine is opened.
    first = read_image(jobs[0][0]) if not inp.is_dir() else None
    engine = open_engine_from_args(args)
    failed = 0
    bar = None
    if len(jobs) > 1 and not args.no_progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), unit="img", desc="upscale")
    try:
        for src, dst in jobs:
            try:
                img = first if first is not None else read_image(src)
                write_image(dst, upscale_image(engine, img, tile=args.tile, budget=budget))
            except SrganError as e:
                if not inp.is_dir():
                    raise
                failed += 1
                if bar:
                    bar.write(f"error: {e}", file=sys.stderr)
                else:
                    print(f"error: {e}", file=sys.stderr)
            if bar:
                bar.update(1)
    finally:
        if bar:
            bar.close()
        engine.close()
    if failed:
        print(f"{failed} of {len(jobs)} image(s) failed", file=sys.stderr)
        return 1
    if not inp.is_dir():
        print(f"wrote {jobs[0][1]}", file=sys.stderr)
    else:
        print(f"wrote {len(jobs)} images to {out}", file=sys.stderr)
    return 0


def _video_exts():
    try:
        from .video import VIDEO_EXTS
    except ImportError:
        return {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"}
    return VIDEO_EXTS


if __name__ == "__main__":
    raise SystemExit(main())
