"""``python -m bench``: run a set of cases, each in its own process, and write the reports.

Examples (from the repo root):
    python -m bench --quick                   # CPU set in under three minutes
    python -m bench                           # full set for this machine (GPU if CUDA is there)
    python -m bench --device cpu --cases 'torch-*,openvino-*' --sizes 1x270x480
    python -m bench --list                    # the cases and why any would be skipped
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from srgan_fast.checkpoints import DEFAULT_MODEL, MODELS
from srgan_fast.errors import SrganError, cli

from . import backends as B

MODEL_NAMES = tuple(MODELS)
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="suite to run (auto: cuda when a GPU is visible)")
    p.add_argument("--quick", action="store_true",
                   help="short CPU set: every case at 1x128x128, the main engines at 1x270x480, few repeats")
    p.add_argument("--cases", help="comma-separated globs of case ids (see --list); the baseline is always run")
    p.add_argument("--sizes", help="comma-separated NxHxW (or HxW) LR sizes, e.g. 1x270x480,8x270x480")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--model", choices=MODEL_NAMES, default=None,
                   help=f"shipped generator to time (default: {DEFAULT_MODEL}; speed is the same for both)")
    w.add_argument("--weights", help="generator weights file (default: the shipped --model)")
    w.add_argument("--random-weights", action="store_true",
                   help="random weights (speed is the same; quality compares precisions only)")
    p.add_argument("--out", help="results folder (default bench/results/<device-slug>[-quick])")
    p.add_argument("--threads", type=int, help="torch threads (default: usable CPUs)")
    p.add_argument("--warmup", type=int, help="untimed calls before timing, the first one timed apart")
    p.add_argument("--repeats", type=int, help="minimum timed calls per size")
    p.add_argument("--min-time", type=float, help="minimum seconds of timed calls per size")
    p.add_argument("--max-time", type=float, help="stop timing a size after this many seconds (>= 3 calls)")
    p.add_argument("--timeout", type=float, help="seconds before a case's process is stopped")
    p.add_argument("--no-peak", action="store_true", help="skip the peak measurement (no %% of peak)")
    p.add_argument("--no-pipelines", action="store_true", help="skip the image/video pipeline measurement")
    p.add_argument("--pipeline-size", help="HxW of the pipeline frame (default: the largest size run)")
    p.add_argument("--list", action="store_true", help="list the cases and static skip reasons, then exit")
    p.add_argument("--replace", action="store_true",
                   help="allow replacing saved results that have cases this run does not measure")
    return p.parse_args(argv)


def resolve_device(asked: str) -> str:
    import torch

    if asked == "cuda" and not torch.cuda.is_available():
        raise SrganError("--device cuda: no CUDA device is visible to torch")
    if asked == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return asked


def resolve_weights(args, tmp: Path) -> dict:
    from srgan_fast.checkpoints import PACKAGE_WEIGHTS, describe, load_generator, model_weights

    if args.weights or args.model or (not args.random_weights and PACKAGE_WEIGHTS.is_file()):
        path = model_weights(args.model, args.weights)
        load_generator(path)  # a bad file fails here with one line, not in every worker
        info = describe(path)
        return {"path": str(path), "random": False, "sha256": info["sha256"],
                "desc": f"{path.name} (sha256 {info['sha256'][:12]})"}
    import torch

    from srgan_fast.checkpoints import save_generator
    from srgan_fast.model import Generator

    torch.manual_seed(0)
    path = tmp / "random_generator.safetensors"
    save_generator(Generator().eval(), path, dtype=torch.float32)
    why = "asked for" if args.random_weights else f"shipped weights not found at {PACKAGE_WEIGHTS}"
    return {"path": str(path), "random": True,
            "desc": f"random (seed 0; {why}): speed is representative, PSNR compares precisions only"}


def settings_for(args):
    from .runner import Settings

    s = Settings.quick() if args.quick else Settings()
    for name in ("warmup", "repeats", "min_time", "max_time"):
        if getattr(args, name) is not None:
            setattr(s, name, getattr(args, name))
    return s


def plan(args, device: str):
    """[(case, sizes or None, skip reason or None)] and the list of all sizes in the run."""
    cases = B.select(B.cases_for(device), args.cases)
    sizes = B.parse_sizes(args.sizes) if args.sizes else (B.QUICK_SIZES if args.quick else B.sizes_for(device))
    out = []
    for case in cases:
        reason = B.static_skip(case, device)
        case_sizes = list(sizes)
        if args.quick and not args.cases and device == "cpu":
            if case.id not in B.QUICK_CASES:
                reason = reason or B.QUICK_LEFT_OUT
            elif case.id not in B.QUICK_LARGE:
                case_sizes = [s for s in sizes if s[1] * s[2] <= 128 * 128] or sizes[:1]
        out.append((case, case_sizes, reason))
    return out, [list(s) for s in sizes]


def refuse_shrinking(out_dir: Path, planned: list[str]) -> None:
    """A run never silently replaces saved results with fewer cases (e.g. a typo in --cases)."""
    try:
        saved = json.loads((out_dir / "results.json").read_text())
    except (OSError, ValueError):
        return
    measured = {c.get("id") for c in saved.get("cases", []) if c.get("status") == "ok"}
    lost = sorted(measured - set(planned))
    if lost:
        raise SrganError(f"{out_dir} holds results for {len(lost)} case(s) this run would not measure "
                         f"({', '.join(lost[:6])}{' ...' if len(lost) > 6 else ''}): use --out DIR, "
                         f"or --replace to overwrite them")


def _spawn(spec: dict, tmp: Path, name: str, timeout: float) -> dict:
    spec_path = tmp / f"{name}.spec.json"
    spec["out"] = str(tmp / f"{name}.json")
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "bench.worker", str(spec_path)]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        rc, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired:
        rc, err = None, ""
    out = Path(spec["out"])
    result = json.loads(out.read_text()) if out.is_file() else {}
    if err.strip():  # build logs, warnings: kept for diagnosis, not shown in the tables
        result["stderr_tail"] = err.strip()[-1500:]
    if rc is None:
        problem = f"stopped after {timeout:.0f} s (--timeout)"
    elif rc != 0 and result.get("status") in (None, "running", "ok") and not result.get("error"):
        tail = [ln for ln in err.strip().splitlines() if ln.strip()][-1:] or [f"exit code {rc}"]
        problem = f"worker died (exit code {rc}): {tail[0][:300]}"
    else:
        return result
    # Keep the sizes it finished: a partial case is shown, with what stopped it.
    if any("median_ms" in e for e in result.get("sizes", [])):
        result.update(status="ok", error=problem)
    else:
        result.update(status="error", reason=problem)
    return result


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _size_line(case_id: str, e: dict) -> str:
    size = f"{e['batch']}x{e['h']}x{e['w']}"
    if "median_ms" not in e:
        return f"  {case_id:<18} {size:<11} {e.get('error') or e.get('skipped')}"
    extra = f", +copies {e['with_copies']['median_ms']:.1f} ms" if "with_copies" in e else ""
    return (f"  {case_id:<18} {size:<11} median {e['median_ms']:.1f} ms, p99 {e['p99_ms']:.1f} ms "
            f"({e['n']} calls){extra}")


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    if args.quick and device == "cuda" and args.device == "auto":
        device = "cpu"  # --quick is the CPU set
    try:
        case_plan, sizes = plan(args, device)
    except ValueError as e:
        raise SrganError(str(e)) from None
    if args.list:
        for case, case_sizes, reason in case_plan:
            where = ", ".join("x".join(map(str, s)) for s in case_sizes)
            print(f"{case.id:<18} {case.title:<34} {('skip: ' + reason) if reason else where}")
        return 0

    import torch

    from . import env as E
    from .report import derive, quality, write_all

    threads = args.threads or E.cpu_info()["usable_cpus"] or 1
    torch.set_num_threads(threads)
    settings = settings_for(args)
    timeout = args.timeout or (600.0 if args.quick else 3600.0)
    stamp = E.stamp(device, threads)
    out_dir = Path(args.out) if args.out else RESULTS / (E.device_slug(stamp) + ("-quick" if args.quick else ""))
    if not args.replace:
        refuse_shrinking(out_dir, [c.id for c, _, reason in case_plan if not reason])
    tmp = Path(tempfile.mkdtemp(prefix="srgan_bench_"))
    weights = resolve_weights(args, tmp)
    run = {"env": stamp, "set": "quick" if args.quick else ("custom" if args.cases or args.sizes else "full"),
           "settings": settings.as_dict(), "weights": weights, "sizes": sizes, "cases": [],
           "pipelines": [], "peaks": None}
    busy_cpus = stamp["usable_cpus"] or 1
    if device == "cpu" and stamp.get("load_average") and stamp["load_average"][0] > 0.5 * busy_cpus:
        run["busy_warning"] = (f"the machine was busy when the run started (1-min load "
                               f"{stamp['load_average'][0]:.1f} on {busy_cpus} CPUs): timings are noisy")
    _say(f"bench: {stamp['device_name']} ({device}), {run['set']} set, weights: {weights['desc']}")
    t_start, snap = time.perf_counter(), E.cpu_snapshot()
    base = {"device": device, "weights": weights["path"], "threads": threads, "settings": settings.as_dict()}
    rc = 0
    try:
        measure(run, args, device, base, case_plan, sizes, tmp, timeout)
    except KeyboardInterrupt:
        # Keep what was measured: the reports say the run was interrupted.
        run["interrupted"] = True
        run["busy_warning"] = (run.get("busy_warning", "") + " Run interrupted: incomplete.").strip()
        rc = 130
    # Other processes' CPU use during the run (our own processes excluded): a CPU run that
    # shared the machine says so, since its numbers are then noisy and pessimistic.
    other = E.other_load(snap, E.cpu_snapshot(), busy_cpus)
    run["env"]["other_cpu_load"] = other
    if device == "cpu" and other is not None and other > 0.15:
        note = f"other processes used {100 * other:.0f}% of the CPUs during the run: timings are noisy"
        run["busy_warning"] = f"{run['busy_warning']}; {note}" if run.get("busy_warning") else note
    quality(run)
    derive(run)
    run["wall_s"] = time.perf_counter() - t_start
    paths = write_all(run, out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    _say(f"bench: {'interrupted' if rc else 'done'} after {run['wall_s']:.0f} s; "
         f"wrote {', '.join(str(p) for p in paths.values())}")
    return rc


def measure(run, args, device, base, case_plan, sizes, tmp, timeout) -> None:
    if not args.no_peak:
        _say("bench: measuring the device peak")
        peak = _spawn({**base, "job": "peak", "seconds": 0.5 if args.quick else 1.5}, tmp, "peak", timeout)
        run["peaks"] = peak.get("peaks")

    for case, case_sizes, reason in case_plan:
        if reason:
            run["cases"].append({"id": case.id, "label": case.title, "backend": case.backend,
                                 "requested_precision": case.precision, "status": "skipped", "reason": reason})
            _say(f"  {case.id:<18} skipped: {reason}")
            continue
        spec = {**base, "job": "case", "sizes": [list(s) for s in case_sizes],
                "case": {"id": case.id, "backend": case.backend, "precision": case.precision,
                         "options": case.options, "label": case.label},
                "quality_out": str(tmp / f"{case.id}.quality.pt")}
        result = _spawn(spec, tmp, case.id, timeout)
        result.setdefault("id", case.id)
        result.setdefault("label", case.title)
        run["cases"].append(result)
        if result.get("status") != "ok" or result.get("error"):
            _say(f"  {case.id:<18} {result.get('status')}: {result.get('reason') or result.get('error')}")
        for e in result.get("sizes", []):
            _say(_size_line(case.id, e))

    if not args.no_pipelines:
        run["pipelines"] = pipelines(args, device, base, case_plan, sizes, tmp, timeout)


def pipelines(args, device, base, case_plan, sizes, tmp, timeout):
    """Image (and video, when available) pipeline for the baseline and the default engine."""
    ids = ["torch-fp32" if device == "cpu" else "torch-fp16-cl", B.DEFAULT]
    by_id = {c.id: (c, r) for c, _, r in case_plan}
    if args.pipeline_size:
        h, w = B.parse_sizes(args.pipeline_size)[0][1:]
    elif args.quick:
        h, w = min((s[1], s[2]) for s in sizes)  # keeps --quick short
    else:
        h, w = max((s[1], s[2]) for s in sizes)
    out = []
    for cid in ids:
        case, reason = by_id.get(cid, (None, None))
        if case is None:
            case = next((c for c in B.cases_for(device) if c.id == cid), None)
            reason = reason or "not in the selected cases"
        if reason:
            out.append({"id": cid, "label": case.title if case else cid, "status": "skipped", "reason": reason})
            continue
        _say(f"bench: pipeline {cid} at {h}x{w}")
        spec = {**base, "job": "pipeline", "size": [h, w], "repeats": 2 if args.quick else 5,
                "frames": 8, "video_repeats": 1 if args.quick else 3, "folder": str(tmp),
                "case": {"id": case.id, "backend": case.backend, "precision": case.precision,
                         "options": case.options, "label": case.label}}
        out.append(_spawn(spec, tmp, f"pipeline-{cid}", timeout))
    return out
