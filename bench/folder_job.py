"""Whole-job cost of a folder run against its bare engine, measured in one process.

    python bench/folder_job.py [--backend openvino --precision int8] [--size 480x270] [--counts 10 20]

Frames: crops of the shared SR images (synthetic texture when they are absent), saved as PNG.
- bare: the engine alone on the same decoded frames (the exact calls a job makes), per frame;
- job: ``folder.run_jobs`` (decode, engine and PNG encode overlapped) on the first N frames;
  marginal per-frame cost = (t[N2] - t[N1]) / (N2 - N1), which removes start-up and pipeline fill;
- serial: the same work one stage after another (what the folder path did before), for reference.
Prints JSON lines and a summary with the CPU name; the goal is marginal <= 1.3x bare.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        import platform
        return platform.processor() or "unknown CPU"


def make_frames(folder: Path, count: int, w: int, h: int) -> list[Path]:
    import numpy as np
    from PIL import Image

    from srgan_fast.eval.datasets import data_root

    sources = []
    data = data_root()
    if data is not None:
        sources = sorted(p for sub in ("BSD200", "Set14", "T91") for p in (data / sub).glob("*.png"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        if sources:
            im = Image.open(sources[i % len(sources)]).convert("RGB")
            im = im.resize((max(w, im.width), max(h, im.height)))
            x, y = (im.width - w) // 2, (im.height - h) // 2
            arr = np.asarray(im.crop((x, y, x + w, y + h)))
        else:
            yy, xx = np.mgrid[0:h, 0:w]
            arr = np.stack([(xx * (i + 3)) % 256, (yy * 5 + i) % 256, rng.integers(0, 256, (h, w))], -1)
        paths.append(folder / f"{i:03d}.png")
        Image.fromarray(arr.astype(np.uint8)).save(paths[-1])
    return paths


def bare_seconds(engine, paths, budget) -> list[float]:
    """Per-frame time of the engine calls a job makes (tiling plan included), nothing else."""
    from srgan_fast.image import job as upscale, tiling
    from srgan_fast.image.read import read_image

    times = []
    for p in paths:
        img = read_image(p)
        dst = p.with_name("x.png")
        h, w = img.size
        tile = tiling.plan(engine, h, w, budget, upscale.job_bytes(upscale.spec_for(dst, img), dst, h, w, 3)).tile
        t = time.perf_counter()
        for _box, sr in tiling.upscale_tiles(engine, img.rgb[None], tile):
            del sr
        times.append(time.perf_counter() - t)
    return times


def job_seconds(engine, paths, out: Path, budget, png_level: int, serial: bool = False) -> float:
    from srgan_fast.image import folder, job as upscale

    jobs = [(p, out / p.name) for p in paths]
    out.mkdir(parents=True)
    t = time.perf_counter()
    if serial:
        for src, dst in jobs:
            upscale.upscale_file(engine, src, dst, budget=budget, png_level=png_level)
    else:
        written, failed = folder.run_jobs(engine, jobs, budget=budget, png_level=png_level, progress=False)
        assert (written, failed) == (len(jobs), 0)
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="openvino", help="engine backend (default: %(default)s)")
    p.add_argument("--precision", default="int8", help="engine precision (default: %(default)s)")
    p.add_argument("--size", default="480x270", help="frame size WxH (default: %(default)s)")
    p.add_argument("--counts", type=int, nargs=2, default=[10, 20], help="the two job lengths (default: %(default)s)")
    p.add_argument("--png-compression", type=int, default=1, help="zlib level (default: %(default)s)")
    p.add_argument("--budget", type=int, default=None, help="--memory-budget in MiB (default: the job default)")
    p.add_argument("--serial", action="store_true", help="also time the stages one after another (default: off)")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved rounds of bare / job runs; the best round is reported, which "
                        "filters out other processes' load (default: %(default)s)")
    args = p.parse_args(argv)
    from srgan_fast import engines

    w, h = map(int, args.size.lower().split("x"))
    n1, n2 = args.counts
    budget = args.budget << 20 if args.budget else None
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "in").mkdir()
        paths = make_frames(d / "in", n2, w, h)
        t = time.perf_counter()
        engine = engines.open_engine(args.backend, args.precision)
        open_s = time.perf_counter() - t
        bare_seconds(engine, paths[:2], budget)  # warm-up
        rounds = []
        for r in range(args.rounds):
            # the bare engine on the frames the marginal covers, then the two job lengths
            bare = statistics.mean(bare_seconds(engine, paths[n1:n2], budget))
            runs = {n: job_seconds(engine, paths[:n], d / f"out{r}_{n}", budget, args.png_compression)
                    for n in (n1, n2)}
            row = {"bare_s": bare, f"job{n1}_s": runs[n1], f"job{n2}_s": runs[n2],
                   "marginal_s": (runs[n2] - runs[n1]) / (n2 - n1)}
            if args.serial:
                serial = {n: job_seconds(engine, paths[:n], d / f"serial{r}_{n}", budget, args.png_compression, True)
                          for n in (n1, n2)}
                row["serial_marginal_s"] = (serial[n2] - serial[n1]) / (n2 - n1)
            row["ratio"] = row["marginal_s"] / bare
            print(json.dumps({k: round(v, 3) for k, v in row.items()}), file=sys.stderr, flush=True)
            rounds.append(row)
        best = min(rounds, key=lambda row: row["bare_s"] + row["marginal_s"])  # the quietest round
        bare, marginal = best["bare_s"], best["marginal_s"]
        result = {"cpu": cpu_model(), "engine": f"{engine.name} {engine.precision}", "frame": f"{w}x{h}",
                  "out": f"{4 * w}x{4 * h}", "png_level": args.png_compression, "engine_open_s": round(open_s, 2),
                  **{k: round(v, 3) for k, v in best.items()},
                  "ratios_all_rounds": [round(row["ratio"], 2) for row in rounds]}
        if args.serial:
            result["serial_ratio"] = round(best["serial_marginal_s"] / bare, 2)
        engine.close()
    print(json.dumps(result))
    print(f"{result['cpu']}: {result['engine']}, {result['frame']} -> {result['out']}: bare engine "
          f"{bare:.3f} s/frame, folder job marginal {marginal:.3f} s/frame = {marginal / bare:.2f}x", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
