"""Folder jobs: plan what to do (mirror the tree, resume, say what is skipped and why), then run
decode, engine and encode as three overlapping stages.

Walk: links to folders are not followed unless asked (``--follow-links``), and then never into a
folder already walked (a link back up the tree, or a bind mount, would repeat it forever); each
is named among the skipped entries. A file whose link leads to its own output is skipped.

One job per output folder: the run holds the lock ``OUT/.srgan_fast.lock`` (``joblock``), and
holding it removes the temporaries a killed run left beside the outputs it plans.

Resume: outputs are written atomically, so an existing output that is non-empty and whose
structure decodes (Pillow's ``verify``: PNG chunk CRCs through IEND, headers elsewhere) is a
finished one and is kept; a 0-byte or truncated file (from another tool, or a crash of an older
version) is redone, and the run says so.

Pipeline: a reader thread decodes the next images while the engine runs, and a writer thread
encodes the previous canvas (PNG encoding costs about as much as an INT8 engine call on a 1080p
frame). Queues are bounded, so at most three output canvases exist at once; the memory budget
counts all three.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SrganError
from .read import IMAGE_EXTS, INPUT_EXTS, VIDEO_EXTS, read_image, same_file
from ..handoff import put as _put

CANVASES = 3  # one being filled, one queued, one being encoded
_DONE = object()


@dataclass
class FolderPlan:
    jobs: list = field(default_factory=list)      # (src, dst) to upscale
    done: list = field(default_factory=list)      # outputs already complete
    redo: list = field(default_factory=list)      # (dst, why) incomplete outputs made again
    skipped: dict = field(default_factory=dict)   # reason -> [paths]

    def skip(self, reason: str, path: Path) -> None:
        self.skipped.setdefault(reason, []).append(path)


def output_name(rel: Path) -> Path:
    """Output path relative to the output folder: the same, except GIF (not written) -> PNG."""
    return rel.with_suffix(".png") if rel.suffix.lower() == ".gif" else rel


def incomplete(path: Path) -> str | None:
    """Why an existing output is not a finished image (None: it is), checked cheaply."""
    from PIL import Image as PILImage

    try:
        if path.stat().st_size == 0:
            return "0 bytes"
        with PILImage.open(path) as im:
            im.verify()
    except Exception as e:  # noqa: BLE001 - any failure to parse means "not finished"
        return f"does not decode ({e.__class__.__name__})"
    return None


LOCK_NAME = ".srgan_fast.lock"


def plan_folder(inp: Path, out: Path, recursive: bool = False, overwrite: bool = False,
                follow_links: bool = False) -> FolderPlan:
    if out.exists() and not out.is_dir():
        raise SrganError(f"{out}: input is a folder, so the output must be a folder")
    if same_file(inp, out):
        raise SrganError(f"{out}: output folder is the input folder; choose another")
    plan = FolderPlan()
    for src in _walk(inp, out, recursive, plan, follow_links, {_key(inp)}):
        dst = out / output_name(src.relative_to(inp))
        if same_file(src, dst):
            plan.skip("link to its own output file", src)
            continue
        if dst.exists() and not overwrite:
            why = incomplete(dst)
            if why is None:
                plan.done.append(dst)
                continue
            plan.redo.append((dst, why))
        plan.jobs.append((src, dst))
    return plan


def _key(folder: Path) -> tuple:
    st = os.stat(folder)
    return st.st_dev, st.st_ino


def _walk(inp: Path, out: Path, recursive: bool, plan: FolderPlan, follow: bool, seen: set):
    """Image files under ``inp`` in name order; everything else is recorded as skipped.
    ``seen``: (device, inode) of every folder walked, so none is walked twice."""
    for entry in sorted(inp.iterdir()):
        if entry.name.startswith("."):
            plan.skip("hidden", entry)
        elif entry.is_symlink() and not entry.exists():
            plan.skip("broken link", entry)
        elif entry.is_dir():
            if same_file(entry, out):
                plan.skip("the output folder", entry)
            elif not recursive:
                plan.skip("subfolder (use --recursive)", entry)
            elif entry.is_symlink() and not follow:
                plan.skip("link to a folder (not followed; --follow-links follows them)", entry)
            elif _key(entry) in seen:
                plan.skip("folder already walked (a link or mount loop)", entry)
            else:
                seen.add(_key(entry))
                yield from _walk(entry, out, recursive, plan, follow, seen)
        elif entry.suffix.lower() in VIDEO_EXTS:
            plan.skip("video (upscale videos one at a time)", entry)
        elif entry.suffix.lower() not in INPUT_EXTS or not entry.is_file():
            plan.skip("not an image file", entry)
        else:
            yield entry


def describe_skipped(plan: FolderPlan, root: Path) -> str | None:
    if not plan.skipped:
        return None
    parts = []
    for reason, paths in plan.skipped.items():
        names = ", ".join(str(p.relative_to(root)) for p in paths[:5]) + (", ..." if len(paths) > 5 else "")
        parts.append(f"{len(paths)} {reason}: {names}")
    total = sum(len(p) for p in plan.skipped.values())
    return f"skipped {total} entr{'y' if total == 1 else 'ies'} of {root}: " + "; ".join(parts)


def run_folder(inp: Path, out: Path, args, budget: int | None, open_engine, spread=None) -> int:
    """The folder CLI: plan, report, run the pipeline, summarise. Exit 1 if any image failed.

    ``spread(jobs) -> (written, failed)``, when given, runs the jobs on workers instead (passed in
    by the command, so the image stage does not import the jobs stage above it).
    """
    from ..atomic import remove_stale
    from ..joblock import hold

    def plan():
        return plan_folder(inp, out, args.recursive, args.overwrite,
                           getattr(args, "follow_links", False))

    log = _printer()
    if not out.is_dir():        # nothing to do (or no images at all) makes no output folder
        first = plan()
        if not first.jobs:
            return _summary(first, inp, out, 0, 0, log)
        out.mkdir(parents=True, exist_ok=True)
    with hold(out, out / LOCK_NAME):      # planned under the lock: no other job is writing here
        work = plan()
        for path, size in remove_stale(*[dst for _, dst in work.jobs], *work.done):
            log(f"note: removed {path} ({size} bytes), left by an interrupted run")
        written, failed = 0, 0
        if work.jobs:
            _announce(work, inp, out, log)
            if spread is not None:  # --workers N / --ray: the same jobs, one engine per worker
                written, failed = spread(work.jobs)
            else:
                engine = open_engine()
                try:
                    written, failed = run_jobs(engine, work.jobs, tile=args.tile, budget=budget,
                                               png_level=args.png_compression,
                                               progress=not args.no_progress)
                finally:
                    engine.close()
            return _summary(work, inp, out, written, failed, log, announced=True)
        return _summary(work, inp, out, 0, 0, log)


def _announce(plan: FolderPlan, inp: Path, out: Path, log) -> None:
    if skipped := describe_skipped(plan, inp):
        log(skipped)
    if plan.done:
        log(f"keeping {len(plan.done)} image(s) already in {out} (--overwrite to redo them)")
    for dst, why in plan.redo:
        log(f"redoing {dst}: the existing file is incomplete ({why})")
    if not plan.jobs and not plan.done and not plan.skipped:
        raise SrganError(f"{inp}: no images ({', '.join(sorted(IMAGE_EXTS))})")


def _summary(plan, inp, out, written, failed, log, announced=False) -> int:
    if not announced:
        _announce(plan, inp, out, log)
    extra = [f"{len(plan.done)} already there"] if plan.done else []
    extra += [f"{failed} failed"] if failed else []
    log(f"wrote {written} image{'s' if written != 1 else ''} to {out}" + (f" ({', '.join(extra)})" if extra else ""))
    return 1 if failed else 0


def _printer(bar=None):
    def log(msg):
        (bar.write if bar is not None else print)(msg, file=sys.stderr)
    return log


def run_jobs(engine, jobs, *, tile=None, budget=None, png_level=1, progress=True):
    """Upscale [(src, dst)] with reading, engine and writing overlapped; returns (written, failed).

    A bad file costs only itself: its one-line error is printed and the run goes on.
    """
    from .job import render, size_notes, spec_for

    bar = None
    if progress and len(jobs) > 1:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), unit="img", desc="upscale")
    log = _printer(bar)
    stop = threading.Event()
    in_q: queue.Queue = queue.Queue(maxsize=2)
    out_q: queue.Queue = queue.Queue(maxsize=1)
    state = {"written": 0, "failed": 0, "notes": set(), "error": None}
    reader = threading.Thread(target=_read_loop, args=(jobs, in_q, stop, state), name="srgan-read", daemon=True)
    writer = threading.Thread(target=_write_loop, args=(out_q, stop, state, log, bar, png_level),
                              name="srgan-write", daemon=True)
    reader.start()
    writer.start()
    try:
        while (item := _get(in_q, stop)) is not _DONE:
            src, dst, img = item
            if not isinstance(img, SrganError):
                try:
                    spec = spec_for(dst, img)
                    img = (render(engine, img, spec, dst, tile, budget, canvases=CANVASES), spec, img.meta,
                           spec.notes + size_notes(src, img))
                except SrganError as e:
                    img = e
            _put(out_q, (dst, img), stop)
        _put(out_q, _DONE, stop)
        writer.join()
    except BaseException:
        stop.set()
        writer.join()  # the write in progress finishes or removes its temporary file
        raise
    finally:
        stop.set()
        if bar is not None:
            bar.close()
    if state["error"] is not None:
        raise state["error"]
    return state["written"], state["failed"]


def _read_loop(jobs, in_q, stop, state) -> None:
    try:
        for src, dst in jobs:
            try:
                img = read_image(src)
            except SrganError as e:
                img = e
            if not _put(in_q, (src, dst, img), stop):
                return
    except BaseException as e:  # a bug: hand it to the main thread
        state["error"] = e
    _put(in_q, _DONE, stop)


def _write_loop(out_q, stop, state, log, bar, png_level) -> None:
    from .write import write_canvas

    try:
        while (item := _get(out_q, stop)) is not _DONE:
            dst, work = item
            if not isinstance(work, SrganError):
                canvas, spec, meta, notes = work
                try:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    write_canvas(dst, canvas, spec, meta, png_level=png_level)
                    state["written"] += 1
                    for note in notes:
                        if note not in state["notes"]:  # each kind of note once per run
                            state["notes"].add(note)
                            log(f"note: {note}")
                except SrganError as e:
                    work = e
                except OSError as e:
                    from ..atomic import os_error
                    work = os_error(dst, e)
                del canvas
            if isinstance(work, SrganError):
                state["failed"] += 1
                log(f"error: {work}")
            if bar is not None:
                bar.update(1)
    except BaseException as e:  # a bug: stop everything and re-raise it in the main thread
        state["error"] = e
        stop.set()


def _get(q: queue.Queue, stop: threading.Event):
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _DONE

