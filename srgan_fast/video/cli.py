"""``python -m srgan_fast.video IN OUT``: the video command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import cli
from .options import VideoOptions, add_video_arguments, video_options
from .source import probe


def parse_args(argv):
    from .. import engines

    p = argparse.ArgumentParser(prog="python -m srgan_fast.video",
                                description="Upscale every frame of a video 4x, keeping audio, "
                                            "subtitles, timestamps and colour metadata.")
    p.add_argument("input", help="input video")
    p.add_argument("output", help="output video file")
    p.add_argument("--backend", default="auto", choices=("auto",) + engines.BACKENDS,
                   help="inference backend (default: %(default)s)")
    from ..checkpoints import DEFAULT_MODEL, MODELS
    from ..precision import AUTO_HELP, CHOICES, DEFAULT_PRECISION
    p.add_argument("--precision", default=DEFAULT_PRECISION, choices=CHOICES,
                   help=f"precision asked of the engine. {AUTO_HELP} (default: %(default)s)")
    p.add_argument("--model", choices=tuple(MODELS), default=None,
                   help=f"shipped generator (default: {DEFAULT_MODEL})")
    p.add_argument("--weights", help="generator weights file; overrides --model")
    from ..detail import add_detail_argument
    add_detail_argument(p)
    p.add_argument("--tile", type=int, default=None,
                   help="tile size in LR pixels (default: from the memory budget; 0 = whole frame)")
    p.add_argument("--memory-budget", type=int, default=None, metavar="MiB",
                   help="working memory for one engine call (default: 2 GiB on CPU, half the free "
                        "GPU memory)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_video_arguments(p)
    from ..jobs.options import add_job_arguments
    add_job_arguments(p)
    return p.parse_args(argv)


def options_from_args(args) -> VideoOptions:
    return VideoOptions(tile=args.tile, progress=not args.no_progress,
                        overwrite=getattr(args, "overwrite", False),
                        **video_options(args)).checked()


def run_video(args, open_engine) -> dict:
    """The whole video job for parsed ``args``: every check before ``open_engine()`` is called.

    The job holds the output's lock (one job per output: a second is refused naming the first's
    pid) and, holding it, removes the temporary files a killed run on the same output left."""
    from ..atomic import remove_stale
    from ..errors import SrganError
    from ..joblock import hold
    from ..jobs.options import check_job_args
    from ..jobs.video_job import run_from_args
    from .pipeline import upscale_video

    check_job_args(args)
    opts = options_from_args(args)
    probe(args.input, args.output, opts.overwrite)    # bad input fails before the slow engine load
    with hold(args.output):
        if not opts.overwrite and Path(args.output).exists():    # made by a job that just ended
            raise SrganError(f"{args.output}: exists (use --overwrite to replace it)")
        for path, size in remove_stale(args.output):
            print(f"note: removed {path.name} ({size / 2**20:.1f} MiB), left by an interrupted "
                  f"run of this job", file=sys.stderr)
        stats = run_from_args(args, opts, open_engine)
        if stats is not None:
            return stats
        with open_engine() as engine:
            return upscale_video(args.input, args.output, engine, opts)


@cli
def main(argv=None):
    args = parse_args(argv)

    def open_engine():
        from ..detail import resolve_weights
        from ..engines import open_engine as _open
        from ..jobs.options import device_option
        engine = _open(args.backend, args.precision,
                       weights=resolve_weights(args.model, args.weights, args.detail), **device_option(args))
        print(f"engine: {engine.describe()}", file=sys.stderr)
        return engine

    stats = run_video(args, open_engine)
    print(f"wrote {args.output}: {stats['frames_out']} frames in {stats['seconds']:.1f} s "
          f"({stats['fps']:.2f} frames/s)", file=sys.stderr)
    return 0
