"""The manifest of a segmented job, and its finished parts verified by checksum.

The manifest records our marker and the output it is for, whether the job made the work folder,
a fingerprint of the source, every setting that changes the output bytes, the segments with their
frame ranges, and for each finished part its size, SHA-256 and frame count. It is rewritten
atomically after every part, so a SIGKILL at any moment leaves the last good state. Every field
of a manifest read back is checked (type and range); a damaged one is one error naming --restart.
"""
from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path

from ..atomic import write_json
from ..digest import file_sha256
from ..errors import SrganError
from . import workdir
from .workdir import MARKER, part_name, work_folder  # noqa: F401 - work_folder: the jobs' import

VERSION = 2
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SEGMENT = {"index": "int", "lo_pts": "int?", "hi_pts": "int?", "seek_pts": "int",
            "first_frame": "int", "frames": "int", "seconds": "number"}


def fingerprint(src: Path, index) -> dict:
    """What the parts depend on: the video stream's packets (bytes, timestamps, keyframe flags)
    and codec parameters, hashed while the source was indexed, plus the file's size."""
    return {"size": src.stat().st_size, "video_sha256": index.video_sha256}


class Manifest:
    """The job's state on disk: ``work/manifest.json`` plus ``work/part-NNNNN.mov`` files."""

    def __init__(self, work: Path, data: dict):
        self.work, self.data = work, data

    @property
    def path(self) -> Path:
        return self.work / workdir.MANIFEST

    @classmethod
    def open(cls, work: Path, source: dict, settings: dict, segments: list, restart: bool,
             output: str = "", same: dict | None = None):
        """Resume the job in ``work`` or start a new one; returns (manifest, resumed).

        A folder that is not ours is refused, ``restart`` or not; a job whose source or settings
        differ, or whose manifest is damaged, is refused (one line naming --restart) unless
        ``restart``, which deletes the job's own files only. ``same``: {setting: test(recorded)}
        for settings whose recorded value may differ and still mean the same output (the
        precision: manifests before ``auto`` recorded the one asked, now the one that runs)."""
        output = output or work.name[:-len(".parts")]
        found = workdir.inspect(work, restart)
        data = {"made_by": MARKER, "version": VERSION, "output": output,
                "made_folder": found.kind in ("absent", "damaged"), "source": source,
                "settings": settings, "segments": [s.as_dict() for s in segments], "done": {}}
        resumed = False
        if found.kind == "ours":
            why = damage(found.data, output)
            if type(found.data.get("made_folder")) is bool:
                data["made_folder"] = found.data["made_folder"]
            if not restart:
                if why:
                    raise SrganError(f"{work / workdir.MANIFEST}: damaged ({why}); run again "
                                     f"with --restart to start over")
                if changed := _difference(found.data, data, same or {}):
                    raise SrganError(f"{work}: holds parts of a job with {changed}; run again "
                                     f"with --restart to start over")
                data["done"], resumed = found.data["done"], True
        elif found.kind == "damaged" and not restart:
            raise SrganError(f"{work / workdir.MANIFEST}: damaged ({found.why}); run again with "
                             f"--restart to start over")
        if found.kind == "absent":
            workdir.make(work)
        elif restart and found.kind != "empty":
            workdir.remove_ours(work)
        m = cls(work, data)
        m.save()
        return m, resumed

    def save(self) -> None:
        write_json(self.path, self.data, allow_nan=False)

    def part(self, index: int) -> Path:
        return self.work / part_name(index)

    def verified(self) -> set:
        """Indexes of finished parts whose file is there with the recorded size and checksum;
        any other entry (a missing, truncated or corrupt part) is dropped, to be redone. The
        temporaries of a killed run are removed (our names only)."""
        good = set()
        for key, rec in list(self.data["done"].items()):
            path = self.part(int(key))
            try:
                st = os.lstat(path)
                ok = stat.S_ISREG(st.st_mode) and st.st_size == rec["bytes"] and \
                    file_sha256(path) == rec["sha256"]
            except OSError:
                ok = False
            if ok:
                good.add(int(key))
            else:
                del self.data["done"][key]
        workdir.remove_temporaries(self.work)
        self.save()
        return good

    def record(self, index: int, result: dict) -> None:
        self.data["done"][str(index)] = {k: result[k] for k in ("bytes", "sha256", "frames")}
        self.save()

    def finish(self, log) -> None:
        """After the join: the job's files go, and the folder if the job made it."""
        workdir.finish(self.work, self.data["made_folder"], log)


def _difference(old: dict, new: dict, same: dict) -> str:
    if old["source"] != new["source"]:
        return "another source file (its size or video changed)"
    a, b = old["settings"], new["settings"]
    diff = [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and not (k in same and k in a and same[k](a[k]))]
    if diff:
        return "other settings (" + ", ".join(diff[:3]) + ")"
    if old["segments"] != new["segments"]:
        return "other segments"
    return ""


def _is(value, kind: str) -> bool:
    if kind.endswith("?") and value is None:
        return True
    kind = kind.rstrip("?")
    if kind == "int":
        return type(value) is int and value >= 0
    if kind == "number":
        return type(value) in (int, float) and math.isfinite(value) and value >= 0
    return False


def damage(data, output: str) -> str:
    """Why ``data`` is not a manifest this version wrote for ``output`` ('' when it is)."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    if data.get("version") != VERSION:
        return f"version {data.get('version')!r}, this srgan_fast writes {VERSION}"
    expected = {"made_by", "version", "output", "made_folder", "source", "settings", "segments",
                "done"}
    if set(data) != expected:
        extra, missing = sorted(set(data) - expected), sorted(expected - set(data))
        return "fields " + ", ".join([f"{k} unexpected" for k in extra] +
                                     [f"{k} missing" for k in missing])
    if data["output"] != output:
        return f"made for the output {data['output']!r}"
    if type(data["made_folder"]) is not bool:
        return "made_folder is not true or false"
    src = data["source"]
    if not isinstance(src, dict) or set(src) != {"size", "video_sha256"} or \
            not _is(src["size"], "int") or not isinstance(src["video_sha256"], str) or \
            not _HEX64.fullmatch(src["video_sha256"]):
        return "source is not {size, video_sha256}"
    if not isinstance(data["settings"], dict):
        return "settings is not an object"
    segments = data["segments"]
    if not isinstance(segments, list) or not segments:
        return "segments is not a list of segments"
    for i, seg in enumerate(segments):
        if not isinstance(seg, dict) or set(seg) != set(_SEGMENT) or seg["index"] != i or \
                not all(_is(seg[k], kind) for k, kind in _SEGMENT.items()) or seg["frames"] < 1:
            return f"segment {i} is not a segment"
    if not isinstance(data["done"], dict):
        return "done is not an object"
    for key, rec in data["done"].items():
        if not (key.isascii() and key.isdigit() and int(key) < len(segments)):
            return f"done names {key!r}, not one of the {len(segments)} segments"
        if not isinstance(rec, dict) or set(rec) != {"bytes", "sha256", "frames"} or \
                not _is(rec["bytes"], "int") or not isinstance(rec["sha256"], str) or \
                not _HEX64.fullmatch(rec["sha256"]) or type(rec["frames"]) is not int or \
                rec["frames"] != segments[int(key)]["frames"]:
            return f"done entry {key!r} is not {{bytes, sha256, frames}} of its segment"
    return ""
