"""The work folder ``OUT.parts/`` of a segmented job: used only if srgan_fast made it, and
cleaned by name.

A folder is ours when it is a real folder (not a link) holding a ``manifest.json`` with our
marker, or holding only files named as a job names them (a manifest we cannot read among our
parts: damaged, redone with ``--restart``). A link, a regular file, or a folder holding anyone
else's files is refused in one line, ``--restart`` included: nothing in it is read, written or
deleted. Cleanup removes only the files a job writes (the manifest, the parts and their
temporaries: regular files matched by name, links never followed) and removes the folder only if
the job made it and nothing else is left in it.
"""
from __future__ import annotations

import errno
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import SrganError

MANIFEST = "manifest.json"
MARKER = "srgan_fast segmented video job"
# Every name a job writes in its work folder: the manifest, the parts, and the temporaries of
# both (atomic.atomic_output: ".STEM.XXXXXXXX.partialEXT").
OURS = re.compile(r"manifest\.json|part-\d{5,}\.mov"
                  r"|\.(?:manifest|part-\d{5,})\.[a-z0-9_]{8}\.partial\.(?:json|mov)")
TEMPORARY = re.compile(r"\..*\.partial\..*")
_MAX_MANIFEST = 64 << 20       # a manifest of 100,000 segments is about 30 MB


def work_folder(dst: Path) -> Path:
    return dst.parent / f"{dst.name}.parts"


def part_name(index: int) -> str:
    return f"part-{index:05d}.mov"


@dataclass
class Found:
    """What ``inspect`` found: ``kind`` 'absent', 'empty', 'ours' (``data``: the parsed manifest)
    or 'damaged' (ours, but its manifest is unreadable: ``why``)."""
    kind: str
    data: dict | None = None
    why: str = ""


def _not_ours(work: Path, why: str, restart: bool) -> SrganError:
    also = " (--restart too deletes only a work folder srgan_fast made)" if restart else ""
    return SrganError(f"{work}: {why}; srgan_fast uses only a work folder it made, so it left "
                      f"this one untouched{also}: move it away or choose another output name")


def inspect(work: Path, restart: bool = False) -> Found:
    """Look at ``work`` without changing anything; ``SrganError`` if it is not ours to use."""
    try:
        st = os.lstat(work)
    except FileNotFoundError:
        return Found("absent")
    if stat.S_ISLNK(st.st_mode):
        raise _not_ours(work, "is a symbolic link", restart)
    if not stat.S_ISDIR(st.st_mode):
        raise _not_ours(work, "exists and is not a folder", restart)
    try:
        names = os.listdir(work)
    except OSError as e:
        raise SrganError(f"{work}: cannot read the work folder ({e.strerror})") from None
    if not names:
        return Found("empty")
    foreign = sorted(n for n in names if not OURS.fullmatch(n))
    if MANIFEST not in names:
        raise _not_ours(work, f"holds files but no {MANIFEST} ({_some(foreign or names)})", restart)
    data, why = _read(work / MANIFEST)
    if isinstance(data, dict) and data.get("made_by") == MARKER:
        return Found("ours", data)
    if foreign:      # a manifest we cannot vouch for, beside files we never write
        raise _not_ours(work, f"holds {_some(foreign)} and a {MANIFEST} srgan_fast did not "
                              f"write ({why or 'no srgan_fast marker'})", restart)
    return Found("damaged", why=why or "not written by this version of srgan_fast")


def _read(path: Path):
    """(parsed JSON or None, why not): never follows a link, never blocks on a FIFO."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return None, f"{MANIFEST} is not a regular file"
        if st.st_size > _MAX_MANIFEST:
            return None, f"{MANIFEST} is {st.st_size} bytes"
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            text = f.read(_MAX_MANIFEST + 1)
        return json.loads(text), ""
    except (OSError, ValueError) as e:
        return None, f"{MANIFEST} is not readable JSON ({e.__class__.__name__})"


def _some(names, n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def make(work: Path) -> None:
    """Create the work folder (it must not exist)."""
    try:
        os.mkdir(work)
    except FileExistsError:
        raise SrganError(f"{work}: appeared while the job started; run again") from None
    except OSError as e:
        raise SrganError(f"{work}: cannot create the work folder ({e.strerror})") from None


def remove_ours(work: Path, keep=()) -> list[str]:
    """Delete the job's own files in ``work`` (by name, regular files only; ``keep``: names to
    leave); return the names of everything else that is left, which is never touched."""
    left = []
    for name in sorted(os.listdir(work)):
        path = work / name
        if name in keep:
            continue
        if not OURS.fullmatch(name) or not stat.S_ISREG(os.lstat(path).st_mode):
            left.append(name)
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    return left


def remove_temporaries(work: Path) -> None:
    """Delete the temporaries a killed run left (our names only, regular files only)."""
    for name in os.listdir(work):
        if OURS.fullmatch(name) and TEMPORARY.fullmatch(name) and \
                stat.S_ISREG(os.lstat(work / name).st_mode):
            try:
                os.unlink(work / name)
            except FileNotFoundError:
                pass


def finish(work: Path, made_here: bool, log) -> None:
    """After a successful join: delete the job's files, then the folder if the job made it and
    nothing else is in it; say what was kept and why."""
    left = remove_ours(work)
    if left:
        log(f"note: kept {work}: it also holds files srgan_fast did not write ({_some(left)})")
        return
    if not made_here:
        return          # an empty folder that was there before the job: not ours to remove
    try:
        os.rmdir(work)
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
            log(f"note: could not remove the empty work folder {work} ({e.strerror})")
