"""Upscale images, folders of images, or videos 4x: ``python -m srgan_fast.upscale INPUT OUTPUT``.

Data flows one way: file -> ``Image`` (RGB float [0, 1], small) -> engine, tile by tile ->
quantized output canvas in the file's own sample type -> file. Grey images come back grey,
16-bit images 16-bit, an alpha plane is upscaled separately with bicubic, and the ICC profile,
EXIF (upright, without the orientation tag) and resolution are kept. ``--memory-budget`` bounds
the whole job: the canvas, the encoder's copy and the tiles' working memory. Outputs are written
under a temporary name and renamed when complete; an input is never overwritten.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import tiling
from .errors import SrganError, cli
from .imageio import INPUT_EXTS, Image, read_image, same_file
from .imagewrite import (DEFAULT_PNG_LEVEL, OutSpec, check_extension, fill, new_canvas, output_spec,
                         write_canvas)
from .imresize import imresize

from .model import SCALE  # noqa: E402 - the one home of the scale factor

# Sides shorter than this get edge-extended context: the network sees mostly its own zero padding
# on a 1-pixel-high strip and returns flat grey (measured: mean colour off by 0.1, MAE 0.17).
MIN_SIDE = 16
SMALL_PAD = 8
_ALPHA_MARGIN = 4  # LR pixels of context for tile-wise bicubic alpha (the kernel reaches 2)


def spec_for(dst: Path, img: Image) -> OutSpec:
    return output_spec(dst, img.gray, img.alpha is not None, img.bits, icc=bool(img.meta.icc))


def job_bytes(spec: OutSpec, dst: Path, h: int, w: int, canvases: int = 1) -> int:
    """Memory an h x w (LR) image job holds besides the tiles: canvases, encoder copy, input."""
    out = h * w * SCALE * SCALE
    canvas = out * spec.channels * spec.dtype().itemsize
    png = dst.suffix.lower() == ".png"
    encoder = 4 * 64 * w * SCALE * spec.channels * 4 if png else out * 4 * spec.dtype().itemsize
    return canvases * canvas + encoder + h * w * 4 * 4 * 3  # input float, its padding and alpha


def small_side_padding(h: int, w: int) -> tuple[int, int]:
    """(rows, cols) of edge extension on each side for a frame with a side under MIN_SIDE."""
    return (SMALL_PAD if h < MIN_SIDE else 0), (SMALL_PAD if w < MIN_SIDE else 0)


def render(engine, img: Image, spec: OutSpec, dst: Path, tile: int | None = None,
           budget: int | None = None, canvases: int = 1) -> np.ndarray:
    """Upscale ``img`` into a new canvas for ``spec`` (quantized tile by tile as they arrive)."""
    h, w = img.size
    py, px = small_side_padding(h, w)
    lr, alpha = img.rgb[None], img.alpha
    if py or px:
        lr = F.pad(lr, (px, px, py, py), mode="replicate")
        alpha = None if alpha is None else F.pad(alpha[None, None], (px, px, py, py), mode="replicate")[0, 0]
    ph, pw = lr.shape[-2:]
    if tile is None:
        fixed = job_bytes(spec, dst, ph, pw, canvases)
        tile = tiling.plan(engine, ph, pw, tiling.job_budget(engine, fixed, budget), fixed).tile
    canvas = new_canvas(spec, ph * SCALE, pw * SCALE)
    with torch.inference_mode():
        for (y0, y1, x0, x1), sr in tiling.upscale_tiles(engine, lr, tile):
            a = None if alpha is None else _alpha_tile(alpha, y0, y1, x0, x1)
            fill(canvas, spec, y0 * SCALE, x0 * SCALE, sr[0].float().cpu(), a)
    return canvas[py * SCALE:(py + h) * SCALE, px * SCALE:(px + w) * SCALE]


def _alpha_tile(alpha: torch.Tensor, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    """Bicubic 4x of one tile of the alpha plane, equal to that part of the whole-plane resize."""
    h, w = alpha.shape
    m = _ALPHA_MARGIN
    py0, px0 = max(0, y0 - m), max(0, x0 - m)
    a = imresize(alpha[None, py0:min(h, y1 + m), px0:min(w, x1 + m)], scale=SCALE)[0]
    oy, ox = (y0 - py0) * SCALE, (x0 - px0) * SCALE
    return a[oy:oy + (y1 - y0) * SCALE, ox:ox + (x1 - x0) * SCALE].float().clamp(0, 1)


def upscale_image(engine, img: Image, tile: int | None = None, budget: int | None = None) -> Image:
    """Upscale one ``Image`` into a new float ``Image`` 4x larger (the API; files use ``render``)."""
    from .imageio import array_to_image

    spec = OutSpec(layout="RGB" + ("A" if img.alpha is not None else ""), bits=32)
    out = array_to_image(render(engine, img, spec, Path("out.tif"), tile, budget))
    return Image(rgb=out.rgb, alpha=out.alpha, gray=img.gray, bits=img.bits, meta=img.meta)


def upscale_file(engine, src: Path, dst: Path, *, tile=None, budget=None,
                 png_level: int = DEFAULT_PNG_LEVEL, img: Image | None = None) -> tuple[str, ...]:
    """Read, upscale and write one image file; returns the notes on what the format changed."""
    img = img if img is not None else read_image(src)
    spec = spec_for(dst, img)
    canvas = render(engine, img, spec, dst, tile, budget)
    write_canvas(dst, canvas, spec, img.meta, png_level=png_level)
    return spec.notes + size_notes(src, img)


def size_notes(src: Path, img: Image) -> tuple[str, ...]:
    h, w = img.size
    if min(h, w) >= MIN_SIDE:
        return ()
    return (f"{src.name}: {w}x{h} has a side under {MIN_SIDE} pixels: edge-extended by {SMALL_PAD} "
            "pixels for the network and cropped back",)


def output_path(inp: Path, out: Path) -> Path:
    """The file a single-image run writes (a folder output gets the input's name; GIF -> PNG)."""
    if out.is_dir():
        out = out / inp.name
        if out.suffix.lower() == ".gif":
            out = out.with_suffix(".png")
    return out


def check_output(inp: Path, out: Path, overwrite: bool) -> None:
    """Everything that can be checked about an output file before the engine opens."""
    import tempfile

    from .atomic import os_error

    check_extension(out)
    if same_file(inp, out):
        raise SrganError(f"{out}: output would overwrite the input")
    if out.exists() and not overwrite:
        raise SrganError(f"{out}: exists (use --overwrite to replace it)")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise SrganError(f"{out}: output folder {folder} does not exist")
    try:  # the real test of writability (/proc, /sys, read-only mounts, permissions)
        with tempfile.TemporaryFile(dir=folder, prefix=".srgan_fast_probe."):
            pass
    except OSError as e:
        raise os_error(out, e) from None


def open_engine_from_args(args):
    """The engine the user asked for: a built artifact (--engine) or backend + precision."""
    from . import engines

    if args.engine:
        clash = [flag for flag, value in (("--weights", args.weights), ("--model", args.model)) if value]
        if clash:
            raise SrganError(f"{' and '.join(clash)} cannot be combined with --engine: the artifact "
                             "fixes its weights (build another artifact for other weights)")
        engine = engines.open_artifact(args.engine)
        _check_engine_matches(args, engine)
    else:
        from .checkpoints import model_weights
        engine = engines.open_engine(args.backend or "auto", args.precision or "fp32",
                                     weights=model_weights(args.model, args.weights))
    asked = "" if engine.requested_precision == engine.precision else \
        f" (asked {engine.requested_precision})"
    print(f"engine: {engine.name} {engine.precision}{asked} on {engine.device}", file=sys.stderr)
    return engine


def _check_engine_matches(args, engine) -> None:
    wrong = []
    if args.backend not in (None, "auto", engine.name):
        wrong.append(f"--backend {args.backend} (the artifact runs {engine.name})")
    if args.precision not in (None, engine.precision, engine.requested_precision):
        wrong.append(f"--precision {args.precision} (the artifact runs {engine.precision})")
    if wrong:
        engine.close()
        raise SrganError(f"{args.engine}: {' and '.join(wrong)}; drop the option or build a matching artifact")


def _level(text: str) -> int:
    if text not in [str(i) for i in range(10)]:
        raise argparse.ArgumentTypeError(f"expected 0..9, got {text!r}")
    return int(text)


def parse_args(argv):
    from . import engines
    from .checkpoints import DEFAULT_MODEL, MODELS

    p = argparse.ArgumentParser(prog="python -m srgan_fast.upscale",
                                description="Upscale an image, a folder of images, or a video 4x.")
    p.add_argument("input", help="image, folder of images, or video")
    p.add_argument("output", help="output file or folder")
    p.add_argument("--backend", default=None, choices=("auto",) + engines.BACKENDS,
                   help="auto: TensorRT on an NVIDIA GPU, else OpenVINO on the CPU "
                        "(default: auto; with --engine: the artifact's)")
    p.add_argument("--precision", default=None, choices=("fp32", "fp16", "bf16", "int8"),
                   help="arithmetic the engine runs; a CPU without fp16 runs the nearest it has and "
                        "says so (default: fp32; with --engine: the artifact's)")
    p.add_argument("--engine", help="a built engine artifact (python -m srgan_fast.build); fixes the "
                                    "weights, backend and precision (default: none)")
    p.add_argument("--model", choices=tuple(MODELS), default=None,
                   help=f"shipped generator: srresnet (MSE: highest PSNR, smooth) or srgan "
                        f"(adversarial: restores texture) (default: {DEFAULT_MODEL})")
    p.add_argument("--weights", help="generator weights file; instead of --model (default: none)")
    p.add_argument("--tile", type=int, default=None,
                   help="tile size in LR pixels (default: from the memory budget; 0 = whole frame)")
    p.add_argument("--memory-budget", type=int, default=None, metavar="MiB",
                   help="memory the job may use above the process baseline: tiles, the output "
                        "canvas and its encoding (default: 2 GiB or a quarter of RAM on CPU, "
                        "half the free GPU memory)")
    p.add_argument("--png-compression", type=_level, default=DEFAULT_PNG_LEVEL, metavar="0-9",
                   help="zlib level for PNG outputs: 1 is fast, 9 smallest (default: %(default)s)")
    p.add_argument("--recursive", action="store_true",
                   help="folders: also upscale images in subfolders, mirroring the tree (default: off)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (default: keep them; folders resume)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown)")
    try:
        from . import video
        video.add_video_arguments(p)
    except ImportError:  # video support is an extra (PyAV)
        pass
    from .jobs.options import add_job_arguments
    add_job_arguments(p)  # --workers, --ray, resume: videos and folders
    return p.parse_args(argv)


@cli
def main(argv=None):
    args = parse_args(argv)
    if args.tile is not None and args.tile < 0:
        raise SrganError("--tile must be >= 0")
    if args.memory_budget is not None and args.memory_budget <= 0:
        raise SrganError(f"--memory-budget must be a positive number of MiB, got {args.memory_budget}")
    budget = args.memory_budget * 2**20 if args.memory_budget else None
    inp, out = Path(args.input), Path(args.output)
    if inp.suffix.lower() in _video_exts():
        from . import video
        video.run_video(args, lambda: open_engine_from_args(args))  # checks paths before the engine
        return 0
    if not inp.exists():
        raise SrganError(f"{inp}: no such file or folder")
    if inp.is_dir():
        from .folder import run_folder
        return run_folder(inp, out, args, budget)
    return _single(inp, out, args, budget)


def _single(inp: Path, out: Path, args, budget) -> int:
    if inp.suffix.lower() not in INPUT_EXTS:
        raise SrganError(f"{inp}: not an image or video extension "
                         f"(images: {', '.join(sorted(INPUT_EXTS))})")
    out = output_path(inp, out)
    check_output(inp, out, args.overwrite)
    img = read_image(inp)  # a bad file fails before the (possibly slow) engine is opened
    engine = open_engine_from_args(args)
    try:
        notes = upscale_file(engine, inp, out, tile=args.tile, budget=budget,
                             png_level=args.png_compression, img=img)
    finally:
        engine.close()
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    h, w = img.size
    print(f"wrote {out} ({w * SCALE}x{h * SCALE})", file=sys.stderr)
    return 0


def _video_exts():
    try:
        from .video import VIDEO_EXTS
    except ImportError:
        return {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"}
    return VIDEO_EXTS


if __name__ == "__main__":
    raise SystemExit(main())
