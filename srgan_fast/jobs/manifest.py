"""The work folder of a segmented job: its manifest, and finished parts verified by checksum.

The manifest records a fingerprint of the source, every setting that changes the output bytes,
the segments with their frame ranges, and for each finished part its size and SHA-256. It is
rewritten atomically after every part, so a SIGKILL at any moment leaves the last good state.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..atomic import write_json
from ..digest import file_sha256
from ..errors import SrganError

VERSION = 1
_SAMPLE = 1 << 20


def fingerprint(src: Path) -> dict:
    """Size plus a hash of the first, middle and last MiB: cheap on a 50 GB film, and any edit
    that changes the length or those bytes is caught (the mtime is left out: a copy keeps work)."""
    size = src.stat().st_size
    h = hashlib.sha256()
    with open(src, "rb") as f:
        for offset in sorted({0, max(0, size // 2 - _SAMPLE // 2), max(0, size - _SAMPLE)}):
            f.seek(offset)
            h.update(f.read(_SAMPLE))
    return {"size": size, "sample_sha256": h.hexdigest()}


def work_folder(dst: Path) -> Path:
    return dst.parent / f"{dst.name}.parts"


def part_name(index: int) -> str:
    return f"part-{index:05d}.mov"


class Manifest:
    """The job's state on disk: ``work/manifest.json`` plus ``work/part-NNNNN.mov`` files."""

    def __init__(self, work: Path, data: dict):
        self.work, self.data = work, data

    @property
    def path(self) -> Path:
        return self.work / "manifest.json"

    @classmethod
    def open(cls, work: Path, source: dict, settings: dict, segments: list, restart: bool):
        """Load the job in ``work`` or start a new one; refuse (one line) a job whose source or
        settings differ, unless ``restart``."""
        data = {"version": VERSION, "source": source, "settings": settings,
                "segments": [s.as_dict() for s in segments], "done": {}}
        old = cls._load(work)
        if old is not None and not restart:
            changed = cls._difference(old, data)
            if changed:
                raise SrganError(f"{work}: holds parts of a job with {changed}; run again with "
                                 f"--restart to start over")
            data["done"] = old.get("done", {})
        if restart and work.exists():
            shutil.rmtree(work)
        work.mkdir(exist_ok=True)
        m = cls(work, data)
        m.save()
        return m, old is not None and not restart

    @staticmethod
    def _load(work: Path):
        path = work / "manifest.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {"unreadable": True}      # treated as a different job

    @staticmethod
    def _difference(old: dict, new: dict) -> str:
        if old.get("unreadable"):
            return "an unreadable manifest"
        if old.get("version") != new["version"]:
            return "another manifest version"
        if old.get("source") != new["source"]:
            return "another source file (its size or content changed)"
        a, b = old.get("settings", {}), new["settings"]
        diff = [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)]
        if diff:
            return "other settings (" + ", ".join(diff[:3]) + ")"
        if old.get("segments") != new["segments"]:
            return "other segments"
        return ""

    def save(self) -> None:
        write_json(self.path, self.data)

    def part(self, index: int) -> Path:
        return self.work / part_name(index)

    def verified(self) -> set:
        """Indexes of finished parts whose file is there with the recorded size and checksum;
        any other entry (a missing, truncated or corrupt part) is dropped, to be redone."""
        good = set()
        for key, rec in list(self.data["done"].items()):
            path = self.part(int(key))
            ok = path.is_file() and path.stat().st_size == rec.get("bytes") and \
                file_sha256(path) == rec.get("sha256")
            if ok:
                good.add(int(key))
            else:
                del self.data["done"][key]
        for stray in self.work.glob("*.partial*"):    # temp files of a killed run
            stray.unlink(missing_ok=True)
        self.save()
        return good

    def record(self, index: int, result: dict) -> None:
        self.data["done"][str(index)] = {k: result[k] for k in ("bytes", "sha256", "frames")}
        self.save()
