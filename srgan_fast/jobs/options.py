"""Command-line options shared by long jobs (videos in segments, folders): resume, workers, Ray,
and their checks (one ``error:`` line each, before any work starts)."""
from __future__ import annotations

import argparse
import math
import re

from ..errors import SrganError
from ..video.options import argument_adder

DEFAULT_RAY_TIMEOUT = 60.0


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
             "CPU cores split between them, at most one per core (default: %(default)s)")
    add("--devices", default=None, metavar="LIST",
        help="devices for the engine or the workers, e.g. cuda:1 or cuda:0,cuda:1 (default: "
             "every GPU, else the CPU)")
    add("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
        help="run on a Ray cluster at ADDRESS (HOST:PORT); no address: a local Ray instance for "
             "this job, reachable from this machine only; inputs and outputs must be on storage "
             "every node sees")
    add("--ray-timeout", type=float, default=DEFAULT_RAY_TIMEOUT, metavar="S",
        help="seconds to wait for a Ray cluster to answer and for its workers to be placed "
             "(default: %(default)s)")


def wants_spread(args) -> bool:
    """--ray, --workers N > 1, or --devices naming several devices."""
    return bool(getattr(args, "ray", None)) or (getattr(args, "workers", 1) or 1) > 1 \
        or len(device_list(getattr(args, "devices", None))) > 1


def device_list(devices: str | None) -> list[str]:
    return [d.strip() for d in (devices or "").split(",") if d.strip()]


def check_job_args(args) -> None:
    """One-line errors for job options that cannot work, before anything starts."""
    workers = getattr(args, "workers", 1)
    if workers is not None and workers < 1:
        raise SrganError(f"--workers must be at least 1, got {workers}")
    seconds = getattr(args, "segment_seconds", None)
    if seconds is not None and (not math.isfinite(seconds) or seconds < 0):
        raise SrganError(f"--segment-seconds must be a number of seconds >= 0 (0 = one pass), "
                         f"got {seconds}")
    timeout = getattr(args, "ray_timeout", DEFAULT_RAY_TIMEOUT)
    if timeout is not None and (not math.isfinite(timeout) or timeout <= 0):
        raise SrganError(f"--ray-timeout must be a number of seconds > 0, got {timeout}")
    ray = getattr(args, "ray", None)
    if ray is not None:
        check_ray_address(ray)
    devices = getattr(args, "devices", None)
    if devices is not None:
        if ray:
            raise SrganError("--devices picks this machine's devices; with --ray, Ray assigns "
                             "them: drop --devices")
        from .engine_spec import check_devices
        check_devices(device_list(devices), devices)


def check_ray_address(address: str) -> None:
    if address in ("local", "auto"):
        return
    m = re.fullmatch(r"(?:ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})", address)
    if not m or not 0 < int(m.group(2)) < 65536:
        raise SrganError(f"--ray {address!r}: expected HOST:PORT (e.g. 10.0.0.5:6379), or no "
                         f"address for a local Ray instance")


def device_option(args) -> dict:
    """``{"device": D}`` for an engine opened in this process when --devices names one device
    (so --devices cuda:1 is honoured, not ignored), else {}. Several devices need workers."""
    devs = device_list(getattr(args, "devices", None))
    return {"device": devs[0]} if len(devs) == 1 else {}
