"""Folders on local workers or Ray: one item per image, written atomically by the image path's
own ``upscale_file`` (passed in by the folder command, so this module does not import it back). Resume is the folder plan's (``srgan_fast.image.folder``): a finished output is
kept, a 0-byte or truncated one redone. A bad image costs only itself, as in one process."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import SrganError


@dataclass
class ImageTask:
    upscale_file: object          # srgan_fast.image.job.upscale_file (pickled by name)
    src: str
    dst: str
    tile: int | None = None
    budget: int | None = None
    png_level: int = 1

    @property
    def key(self) -> str:
        return self.dst

    units = 1

    def run(self, engine, bar=None) -> dict:
        dst = Path(self.dst)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            notes = self.upscale_file(engine, Path(self.src), dst, tile=self.tile, budget=self.budget,
                                 png_level=self.png_level)
            result = {"notes": list(notes)}
        except SrganError as e:
            result = {"error": str(e)}
        if bar is not None:
            bar.update(1)
        return result


def run_spread(jobs, args, budget, upscale_file) -> tuple[int, int]:
    """Upscale [(src, dst)] with --workers/--ray and ``upscale_file(engine, src, dst, tile=,
    budget=, png_level=)``; returns (written, failed)."""
    from .runners import make_runner

    items = [ImageTask(upscale_file, str(s), str(d), args.tile, budget,
                       getattr(args, "png_compression", 1)) for s, d in jobs]
    bar = None
    if not args.no_progress:
        from tqdm import tqdm
        bar = tqdm(total=len(items), unit="img", desc="upscale", dynamic_ncols=True)
    counts, notes = {"written": 0, "failed": 0}, set()

    def say(msg):
        (bar.write if bar is not None else print)(msg, file=sys.stderr)

    def on_done(item, result):
        if "error" in result:
            counts["failed"] += 1
            say(f"error: {result['error']}")
            return
        counts["written"] += 1
        for note in result["notes"]:
            if note not in notes:        # each kind of note once per run
                notes.add(note)
                say(f"note: {note}")

    try:
        make_runner(args, None).run(items, on_done, bar)
    finally:
        if bar is not None:
            bar.close()
    return counts["written"], counts["failed"]
