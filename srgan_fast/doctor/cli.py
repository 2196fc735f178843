"""``python -m srgan_fast.doctor``: does every backend work on this machine, how fast, and what to
fix when it does not. One row per backend x precision; exit status 1 when a row that ran failed.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import time

from ..errors import HelpFormatter, SrganError, cli

DESCRIPTION = ("Check every backend x precision on this machine: parity against the fp32 PyTorch reference on "
               "real pixels, the fp16/bf16 range per layer, tiled == whole frame, speed against the measured "
               "peak, and memory. Exit status 0: every row that ran passed; 1: a row failed; 2: bad input.")
SIZES = {("cuda", False): (1, 270, 480), ("cuda", True): (1, 135, 240),  # 1080p / 540p output
         ("cpu", False): (1, 128, 128), ("cpu", True): (1, 64, 64)}


def _names(text: str, allowed, what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise SrganError(f"--{what}: unknown {', '.join(map(repr, bad)) or 'empty list'} "
                         f"(choose from {', '.join(allowed)})")
    return list(dict.fromkeys(names))


def _size(text: str | None, device: str, quick: bool) -> list[int]:
    if not text:
        return list(SIZES[("cuda" if device.startswith("cuda") else "cpu", quick)])
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SrganError(f"--size: want HxW in LR pixels, e.g. 270x480, got {text!r}") from None
    if h < 1 or w < 1:
        raise SrganError(f"--size: sides must be positive, got {text!r}")
    return [1, h, w]


def resolve_device(asked: str) -> str:
    import torch

    if asked == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if asked == "cpu":
        return "cpu"
    if asked == "cuda" or asked.startswith("cuda:"):
        if not torch.cuda.is_available():
            why = "this torch has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise SrganError(f"--device {asked}: {why} (torch {torch.__version__}); run with --device cpu")
        index = 0 if asked == "cuda" else asked.split(":", 1)[1]
        if not str(index).isdigit() or int(index) >= torch.cuda.device_count():
            raise SrganError(f"--device {asked}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return f"cuda:{int(index)}"
    raise SrganError(f"--device: want cpu, cuda or cuda:N, got {asked!r}")


def parse_args(argv):
    from ..checkpoints import DEFAULT_MODEL, MODELS
    from ..engines import BACKENDS
    from ..precision import CHOICES

    p = argparse.ArgumentParser(prog="python -m srgan_fast.doctor", description=DESCRIPTION,
                                formatter_class=HelpFormatter)
    p.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (auto: cuda:0 when a GPU is visible)")
    p.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated backends to check")
    p.add_argument("--precisions", default=",".join(CHOICES),
                   help="comma-separated precisions to ask for (auto: what every command runs by default)")
    p.add_argument("--model", choices=tuple(MODELS), default=None,
                   help=f"shipped generator to check (default: {DEFAULT_MODEL}; --weights overrides)")
    p.add_argument("--weights", default=None, help="generator weights file (default: the --model weights)")
    p.add_argument("--quick", action="store_true",
                   help="CI mode: smaller speed size, fewer timed calls, shorter peak, no Triton interpreter")
    p.add_argument("--size", default=None, metavar="HxW",
                   help="LR size timed (default: 270x480 = 1080p output on a GPU, 128x128 on a CPU; "
                        "--quick: 135x240 / 64x64)")
    p.add_argument("--json", default=None, metavar="FILE", help="write every row, versions and the device here")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="artifact cache folder (default: $SRGAN_FAST_CACHE or ~/.cache/srgan_fast)")
    p.add_argument("--calib", default=None, metavar="DIR",
                   help="your LR images for the fp16 range check and INT8 scales of the builds "
                        "(as python -m srgan_fast.build --calib; default: BSD200 from the shared data, else synthetic)")
    p.add_argument("--rebuild", action="store_true", help="rebuild the artifacts even when cached")
    p.add_argument("--no-peak", action="store_true", help="skip the peak measurement (no fraction of peak)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds one backend may take, builds included (default 1200; --quick 600)")
    p.add_argument("--table", nargs="+", default=None, metavar="JSON",
                   help="print the markdown table 'what has been run where' from doctor JSON files, and exit")
    p.add_argument("--show", default=None, metavar="JSON", help="print the text report of a doctor JSON file, and exit")
    p.add_argument("--schema", action="store_true", help="print the JSON schema's documentation (markdown), and exit")
    args = p.parse_args(argv)
    if args.timeout is not None and not args.timeout > 0:
        raise SrganError(f"--timeout: want a positive number of seconds, got {args.timeout:g}")
    args.backends = _names(args.backends, BACKENDS, "backends")
    args.precisions = _names(args.precisions, CHOICES, "precisions")
    return args


def _model(args) -> dict:
    from ..checkpoints import load_generator, model_name
    from ..detail import resolve_weights
    from ..digest import file_sha256
    from ..model import flops_per_lr_pixel

    path = resolve_weights(args.model, args.weights)
    g = load_generator(path)  # bad weights: one line here, not one per backend
    return {"name": model_name(path), "weights": str(path), "sha256": file_sha256(path),
            "macs_per_lr_pixel": flops_per_lr_pixel(g)}


def _say(msg: str) -> None:
    print(f"doctor: {msg}", file=sys.stderr, flush=True)


def run(args, argv) -> dict:
    """Measure the peak, run every backend in its own process, and assemble the document."""
    from .availability import backend_skip
    from .inputs import parity_crops, tiling_frame
    from .peak import measure_peaks
    from .report import SCHEMA, SCHEMA_VERSION
    from .spawn import run_backend
    from .speed import settings_for, with_peak
    from .versions import device_info, versions
    from .worker import empty_row

    t0 = time.perf_counter()
    device = resolve_device(args.device)
    if args.calib is not None and not os.path.isdir(args.calib):
        raise SrganError(f"--calib {args.calib}: no such folder")
    model = _model(args)
    size = _size(args.size, device, args.quick)
    seconds = 0.3 if args.quick else 1.0
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    if device.startswith("cuda"):
        from .worker import no_tf32

        no_tf32()  # the fp32 peak the way the rows run: IEEE fp32
    peaks = {}
    if not args.no_peak:
        _say(f"measuring the peak of {device} (large matmuls, {seconds:g} s each)")
        peaks = measure_peaks(device, seconds)
    timeout = args.timeout or (600.0 if args.quick else 1200.0)
    rows: list[dict] = []
    skips = {b: backend_skip(b, device, args.quick) for b in args.backends}
    to_run = [b for b in args.backends if not skips[b]]
    spent: list[float] = []  # seconds per backend run so far: the rate behind the estimate
    for backend in args.backends:
        if skips[backend]:
            row = empty_row(backend, None)
            row["reason"] = skips[backend]
            rows.append(row)
            _say(f"{backend}: skip: {skips[backend]}")
            continue
        left = len(to_run) - len(spent)
        eta = f", about {sum(spent) / len(spent) * left:.0f} s left at this rate" if spent else ""
        _say(f"[{len(spent) + 1}/{len(to_run)}] {backend} ({time.perf_counter() - t0:.0f} s elapsed{eta})")
        spec = {"backend": backend, "precisions": args.precisions, "device": device, "weights": model["weights"],
                "quick": args.quick, "size": size, "cache": args.cache, "rebuild": args.rebuild, "calib": args.calib,
                "pycuda": backend == "tensorrt" and _has("pycuda")}
        started = time.perf_counter()
        rows += run_backend(spec, timeout)
        spent.append(time.perf_counter() - started)
    # Measured again after the rows, keeping the better of the two: other work on the machine
    # (or a GPU still clocking up) makes a single measurement low, and the peak is a ceiling.
    if not args.no_peak:
        _say("measuring the peak again")
        peaks = _best(peaks, measure_peaks(device, seconds))
    for row in rows:
        with_peak(row["speed"], row["runs"], peaks)
    counts = {k: sum(r["status"] == v for r in rows) for k, v in (("ok", "ok"), ("fail", "FAIL"), ("skip", "skip"))}
    settings = settings_for(device, args.quick)
    crops = [f"{x.shape[2]}x{x.shape[3]}" for _, x in parity_crops()]
    frame, tile = tiling_frame()
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": "python -m srgan_fast.doctor " + " ".join(argv), "exit_status": 1 if counts["fail"] else 0,
            "wall_seconds": round(time.perf_counter() - t0, 1), "summary": counts,
            "device": {**device_info(device), "load_average": load}, "versions": versions(device), "model": model,
            "settings": {"quick": args.quick, "backends": args.backends, "precisions": args.precisions,
                         "speed_size": size, "parity_crops": crops,
                         "tiling": {"frame": list(frame.shape[2:]), "tile": tile},
                         "timing": settings.as_dict(), "peak_seconds": None if args.no_peak else seconds,
                         "cache": args.cache,
                         "calib": args.calib, "tf32": False if device.startswith("cuda") else None},
            "peaks": peaks, "rows": rows}


def _best(a: dict, b: dict) -> dict:
    """Per precision, the measurement with the higher rate."""
    return {k: max((a.get(k), b.get(k)), key=lambda p: (p or {}).get("tflops") or 0) for k in {**a, **b}}


def _has(module: str) -> bool:
    from ..hardware import has_module

    return has_module(module)


@cli
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.schema:
        from .report import schema_markdown

        print(schema_markdown())
        return 0
    if args.table:
        from .table import load, markdown

        print(markdown(load(args.table)))
        return 0
    from .report import text

    if args.show:
        from .table import load

        print(text(load([args.show])[0]))
        return 0
    if args.json:  # refuse an unwritable --json before minutes of work
        from pathlib import Path

        folder = Path(args.json).resolve().parent
        if not folder.is_dir():
            raise SrganError(f"--json {args.json}: folder {folder} does not exist")
    from .report import finite

    doc = finite(run(args, argv))
    if args.json:
        from ..atomic import write_json

        write_json(args.json, doc)
    print(text(doc))
    _say(f"done in {doc['wall_seconds']:.0f} s" + (f"; JSON in {args.json}" if args.json else ""))
    return doc["exit_status"]
