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

from .errors import SrganError, cli
from .image.read import INPUT_EXTS, VIDEO_EXTS, read_image, same_file
from .image.job import upscale_file
from .image.write import DEFAULT_PNG_LEVEL, check_extension

from .model import SCALE  # noqa: E402 - the one home of the scale factor

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
        clash = [flag for flag, value in (("--weights", args.weights), ("--model", args.model),
                                          ("--detail", args.detail)) if value is not None]
        if clash:
            raise SrganError(f"{' and '.join(clash)} cannot be combined with --engine: the artifact "
                             "fixes its weights (build another artifact for other weights)")
        from .jobs.options import device_option
        engine = engines.open_artifact(args.engine, **device_option(args))
        _check_engine_matches(args, engine)
    else:
        from .detail import resolve_weights
        from .jobs.options import device_option
        from .precision import DEFAULT_PRECISION
        engine = engines.open_engine(args.backend or "auto", args.precision or DEFAULT_PRECISION,
                                     weights=resolve_weights(args.model, args.weights, args.detail),
                                     **device_option(args))
    print(f"engine: {engine.describe()}", file=sys.stderr)
    return engine


def _check_engine_matches(args, engine) -> None:
    wrong = []
    if args.backend not in (None, "auto", engine.name):
        wrong.append(f"--backend {args.backend} (the artifact runs {engine.name})")
    if args.precision not in (None, "auto", engine.precision, engine.requested_precision):
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
    from .precision import AUTO_HELP, CHOICES
    p.add_argument("--precision", default=None, choices=CHOICES,
                   help=f"arithmetic the engine runs. {AUTO_HELP} (default: auto; with --engine: "
                        f"the artifact's)")
    p.add_argument("--engine", help="a built engine artifact (python -m srgan_fast.build); fixes the "
                                    "weights, backend and precision (default: none)")
    p.add_argument("--model", choices=tuple(MODELS), default=None,
                   help=f"shipped generator: srresnet (MSE: highest PSNR, smooth) or srgan "
                        f"(adversarial: restores texture) (default: {DEFAULT_MODEL})")
    p.add_argument("--weights", help="generator weights file; instead of --model (default: none)")
    from .detail import add_detail_argument
    add_detail_argument(p)
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
    p.add_argument("--follow-links", action="store_true",
                   help="folders with --recursive: also walk subfolders reached through symbolic "
                        "links, each folder once (default: links to folders are skipped)")
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
    from .jobs.options import check_job_args
    check_job_args(args)  # --workers, --devices, --segment-seconds, --ray: before any work
    inp, out = Path(args.input), Path(args.output)
    if inp.suffix.lower() in VIDEO_EXTS:
        from . import video
        stats = video.run_video(args, lambda: open_engine_from_args(args))  # checks paths before the engine
        frames = f": {stats['frames_out']} frames" if isinstance(stats, dict) and "frames_out" in stats else ""
        print(f"wrote {out}{frames}", file=sys.stderr)
        return 0
    if not inp.exists():
        raise SrganError(f"{inp}: no such file or folder")
    if inp.is_dir():
        from .image.folder import run_folder
        from .jobs.options import wants_spread
        spread = None
        if wants_spread(args):
            from .jobs.folder_job import run_spread
            spread = lambda jobs: run_spread(jobs, args, budget, upscale_file)  # noqa: E731
        return run_folder(inp, out, args, budget, lambda: open_engine_from_args(args), spread)
    return _single(inp, out, args, budget)


def _single(inp: Path, out: Path, args, budget) -> int:
    if inp.suffix.lower() not in INPUT_EXTS:
        raise SrganError(f"{inp}: not an image or video extension "
                         f"(images: {', '.join(sorted(INPUT_EXTS))})")
    out = output_path(inp, out)
    check_output(inp, out, args.overwrite)
    from .jobs.options import wants_spread
    if wants_spread(args):
        raise SrganError("--workers, --ray and several --devices spread folders and videos; "
                         "one image runs in this process on one device")
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


if __name__ == "__main__":
    raise SystemExit(main())
