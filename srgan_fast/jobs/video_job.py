"""A video job in segments: plan at keyframes, resume from the work folder, encode the missing
parts (here, on local workers or on Ray), join them, and clean up.

    OUT.parts/manifest.json     source fingerprint, settings, segments, finished parts + checksums
    OUT.parts/part-00000.mov    one video-only part per segment, written atomically

Run the same command again after an interruption (Ctrl-C, SIGKILL, a reboot) and it resumes:
finished parts are verified by checksum and kept, a missing or corrupt one is redone. The work
folder is used only if srgan_fast made it (``workdir``); the caller holds the output's job lock
(``joblock``), so no other job writes the same parts.
"""
from __future__ import annotations

import time
from pathlib import Path

from ..atomic import atomic_output
from ..errors import SrganError
from ..video.options import VideoOptions
from .engine_spec import say
from .join import join
from .manifest import Manifest, fingerprint, work_folder
from .parts import PART_ENCODER_THREADS, PartTask, part_options
from .segments import index_source, plan_segments, source_state


def job_settings(opts: VideoOptions, engine_identity: dict, seconds: float, dst: Path) -> dict:
    """Every setting that changes the output bytes."""
    crf = float(opts.crf) if opts.crf is not None else None
    return {**engine_identity, "codec": opts.codec, "crf": crf, "pix_fmt": opts.pix_fmt,
            "preset": opts.preset, "encoder_options": opts.encoder_options, "tile": opts.tile,
            "batch": opts.batch, "budget": opts.budget, "segment_seconds": seconds,
            "start": opts.start, "duration": opts.duration, "container": dst.suffix.lower(),
            "part_encoder_threads": PART_ENCODER_THREADS}


def plan_job(src: Path, opts: VideoOptions, seconds: float, index=None):
    return plan_segments(index or index_source(src), seconds, opts)


def run_segmented(src, dst, opts: VideoOptions, seconds: float, runner, engine_identity: dict,
                  *, restart: bool = False, keep_parts: bool = False, index=None, same=None) -> dict:
    """Upscale ``src`` into ``dst`` in segments of at least ``seconds`` with ``runner``.
    ``same``: equivalent recorded settings, as for ``Manifest.open``."""
    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() == ".avi":
        raise SrganError(f"{dst}: AVI keeps no timestamps to join parts by; use "
                         f"--segment-seconds 0 or another container")
    work = work_folder(dst)
    if work.resolve() in src.resolve().parents:      # its cleanup would delete the input
        raise SrganError(f"{src}: the input is inside the job's work folder {work}; move it out")
    t0 = time.perf_counter()
    index = index or index_source(src)
    state = index.state                  # the parts check it: a source replaced mid-job is caught
    segments = plan_job(src, opts, seconds, index)
    manifest, existed = Manifest.open(work, fingerprint(src, index),
                                      job_settings(opts, engine_identity, seconds, dst),
                                      segments, restart, dst.name, same)
    done = manifest.verified()
    if existed:
        say(f"resuming: {len(done)} of {len(segments)} segments already done")
    popts = part_options(opts, dst)
    tasks = [PartTask(str(src), str(manifest.part(s.index)), popts, s, state)
             for s in segments if s.index not in done]
    total = sum(s.frames for s in segments)
    bar = _bar(opts, src, total, total - sum(t.units for t in tasks))
    engine_seconds = []

    def on_done(task, result):
        manifest.record(task.key, result)
        engine_seconds.append(result.get("engine_seconds", 0.0))

    try:
        runner.run(tasks, on_done, bar)
    finally:
        if bar is not None:
            bar.close()
    t1 = time.perf_counter()
    with atomic_output(dst) as tmp:
        joined = join(src, [(manifest.part(s.index), s.seek_pts) for s in segments], tmp, dst, opts,
                      opts.log or (lambda m: say(f"warning: {m}")))
        if source_state(src) != state:     # the audio came from a changed file: do not publish
            raise SrganError(f"{src}: changed while the job ran; run again")
    if joined["frames"] != total:
        raise RuntimeError(f"joined {joined['frames']} frames, the segments hold {total}")
    if not keep_parts:
        manifest.finish(say)
    t2 = time.perf_counter()
    return {"frames_in": total, "frames_out": total, "segments": len(segments),
            "resumed": len(done), "seconds": t2 - t0, "join_seconds": t2 - t1,
            "fps": total / (t2 - t0) if t2 > t0 else 0.0, "engine_seconds": sum(engine_seconds),
            "output": str(dst), **{k: joined[k] for k in ("streams", "warnings")}}


def _bar(opts: VideoOptions, src: Path, total: int, initial: int):
    if not opts.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="frame", desc=src.name, dynamic_ncols=True,
                smoothing=0.1)


def run_from_args(args, opts: VideoOptions, open_engine) -> dict | None:
    """The segmented path of the video CLI, or None when this job runs in one pass."""
    from .options import wants_spread
    from .runners import make_runner
    from .segments import segment_length

    src, dst = Path(args.input), Path(args.output)
    spread = max(getattr(args, "workers", 1) or 1, 2 if getattr(args, "ray", None) else 1)
    asked = getattr(args, "segment_seconds", None)
    chosen = asked is not None or wants_spread(args)      # else segments are only a default
    if asked == 0:
        if wants_spread(args):
            raise SrganError("--workers and --ray spread a video by segments: drop "
                             "--segment-seconds 0")
        return None
    if not chosen and dst.suffix.lower() == ".avi":
        return None                                        # AVI keeps no timestamps to join by
    try:
        index = index_source(src)
    except SrganError:
        if chosen:
            raise
        return None          # no timestamps or unreadable packets: one pass says what is wrong
    seconds = segment_length(asked, index, opts, spread)
    if seconds <= 0:
        return None
    from .engine_spec import EngineSpec

    spec = EngineSpec.from_args(args)
    runner = make_runner(args, open_engine, spec)
    return run_segmented(src, dst, opts, seconds, runner, spec.identity(),
                         restart=getattr(args, "restart", False),
                         keep_parts=getattr(args, "keep_parts", False), index=index,
                         same={"precision": spec.same_precision})
