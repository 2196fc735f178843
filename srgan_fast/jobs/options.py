"""Command-line options shared by long jobs (videos in segments, folders): resume, workers, Ray."""
from __future__ import annotations

import argparse

from ..video.options import argument_adder


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the job options to ``parser`` (options it already has are left alone)."""
    add = argument_adder(parser, "long jobs (resume, workers, Ray)")

    add("--segment-seconds", type=float, default=None, metavar="S",
        help="video: cut the work at keyframes into segments of at least S seconds, each a "
             "resumable part (default: 60 for inputs of 3 minutes or more, else one pass; 0 = "
             "one pass)")
    add("--restart", action="store_true",
        help="video: discard the parts of an earlier run instead of resuming it")
    add("--keep-parts", action="store_true",
        help="video: keep the work folder (parts and manifest) after a successful join")
    add("--workers", type=int, default=1, metavar="N",
        help="worker processes, each with its own engine: one per GPU of --devices, else the "
             "CPU cores split between them (default: %(default)s)")
    add("--devices", default=None, metavar="LIST",
        help="devices for the workers, e.g. cuda:0,cuda:1 (default: every GPU, else the CPU)")
    add("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
        help="run on a Ray cluster at ADDRESS (no address: a local Ray instance for this job); "
             "inputs and outputs must be on storage every node sees")


def wants_spread(args) -> bool:
    """--ray, --workers N > 1, or --devices naming several devices."""
    devices = [d for d in (getattr(args, "devices", None) or "").split(",") if d.strip()]
    return bool(getattr(args, "ray", None)) or (getattr(args, "workers", 1) or 1) > 1 \
        or len(devices) > 1
