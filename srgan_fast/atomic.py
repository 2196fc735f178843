"""Atomic writes: the one home for "never leave a half-written file under a final name".

Every output (images, videos, parts, checkpoints, sidecars, JSON reports) is written to a
temporary name in the same folder and renamed into place only when complete; ``os.replace`` is
atomic within one file system, so a crash, a full disk or SIGKILL leaves the old file or none.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import tempfile
from pathlib import Path

from .errors import SrganError


def _check_folder(path: Path) -> Path:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise SrganError(f"{path}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise SrganError(f"{path}: output folder {folder} is not writable")
    return folder


def os_error(path, e: OSError) -> SrganError:
    """One-line message for an OSError while writing ``path`` (disk full, read-only, ...)."""
    if e.errno == errno.ENOSPC:
        return SrganError(f"{path}: no space left on the device (nothing was written under that name)")
    return SrganError(f"{path}: cannot write ({e.strerror or e.__class__.__name__})")


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path beside ``path`` (same extension); rename it to ``path`` on success.

    On any failure the temporary file is removed; an OSError (ENOSPC, EROFS, EIO ...) becomes a
    one-line SrganError.
    """
    path = Path(path)
    folder = _check_folder(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.stem}.", suffix=f".partial{path.suffix}")
    except OSError as e:
        raise os_error(path, e) from None
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes 0600, and some writers (safetensors) recreate the file 0600: outputs get
        # the usual permissions, set after the writer is done.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise os_error(path, e) from None
        raise


def remove_stale(*paths) -> list[tuple[Path, int]]:
    """Remove the temporary files killed writers of ``paths`` left beside them; [(file, bytes)].

    Only regular files named as ``atomic_output(path)`` names them (never a link, a folder or
    another name); each folder is listed once. Call it only while holding the job's lock on the
    outputs (``joblock.hold``), so no live writer can own one of them."""
    wanted: dict = {}
    for path in map(Path, paths):
        folder = path.parent if str(path.parent) else Path(".")
        wanted.setdefault(folder, set()).add((path.stem, path.suffix))
    removed = []
    for folder, names in wanted.items():
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        for name in entries:
            m = _TEMPORARY.fullmatch(name)
            if not m or (m.group(1), m.group(2)) not in names:
                continue
            try:
                st = os.lstat(folder / name)
                if stat.S_ISREG(st.st_mode):
                    os.unlink(folder / name)
                    removed.append((folder / name, st.st_size))
            except OSError:
                continue
    return removed


_TEMPORARY = re.compile(r"\.(.*)\.[a-z0-9_]{8}\.partial(\.[^./]*|)")


def write_bytes(path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path, obj, **kw) -> None:
    """JSON (indent 2 by default; Paths and tuples written as strings and lists)."""
    def default(o):
        return str(o) if isinstance(o, Path) else list(o) if isinstance(o, tuple) else str(o)
    kw.setdefault("indent", 2)
    write_text(path, json.dumps(obj, default=default, **kw) + "\n")
