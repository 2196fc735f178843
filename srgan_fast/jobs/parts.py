"""One segment of a video job -> one part file (video only), written atomically.

Parts are encoded with a fixed number of encoder threads, so the same segment gives the same
bytes whichever process, worker or machine encodes it, and resumed or spread runs decode to the
frames of an uninterrupted one.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..atomic import atomic_output
from ..errors import SrganError
from ..video.options import VideoOptions
from ..digest import file_sha256
from .segments import source_state

PART_ENCODER_THREADS = 2


def part_options(opts: VideoOptions, dst: Path) -> VideoOptions:
    """The options a part is encoded with: the final output's codec, fixed encoder threads, no
    bar (the job has one), no stream warnings (the join gives them)."""
    codec = opts.codec or ("libvpx-vp9" if dst.suffix.lower() == ".webm" else "libx264")
    enc = {**opts.encoder_options, "threads": str(PART_ENCODER_THREADS)}
    return replace(opts, codec=codec, encoder_options=enc, progress=False, max_frames=None,
                   overwrite=True, log=None)


@dataclass
class PartTask:
    """Encode segment ``segment`` (a ``Segment``) of ``src`` into ``part``."""
    src: str
    part: str
    options: VideoOptions
    segment: object
    state: tuple | None = None     # source_state(src) when the job indexed it

    @property
    def key(self):
        return self.segment.index

    @property
    def units(self) -> int:
        return self.segment.frames

    def run(self, engine, bar=None) -> dict:
        from ..video.pipeline import run_pass
        from ..video.source import open_input

        src, part, seg = Path(self.src), Path(self.part), self.segment
        self._check_source(src)
        inp, vin = open_input(src)
        try:
            with atomic_output(part) as tmp:
                stats = run_pass(inp, vin, src, part, tmp, engine, self.options,
                                 segment=seg.bounds(), bar=bar)
                self._check_source(src)       # before the part gets its final name
        finally:
            inp.close()
        if stats["frames_out"] != seg.frames:
            part.unlink(missing_ok=True)
            raise SrganError(f"{src}: segment {seg.index} decoded to {stats['frames_out']} frames, "
                             f"its packets say {seg.frames}; use --segment-seconds 0 for this file")
        return {"index": seg.index, "frames": stats["frames_out"], "bytes": part.stat().st_size,
                "sha256": file_sha256(part), "engine_seconds": stats["engine_seconds"]}

    def _check_source(self, src: Path) -> None:
        try:
            now = source_state(src)
        except OSError as e:
            raise SrganError(f"{src}: cannot read the source any more ({e.strerror})") from None
        if self.state is not None and now != tuple(self.state):
            raise SrganError(f"{src}: changed while the job ran (size or modification time); "
                             f"run again")
