"""One job per output: an exclusive lock beside the output, held for the whole job.

``hold(output)`` takes ``fcntl.flock`` on ``.NAME.lock`` beside the output. The kernel releases
the lock however the process ends (SIGKILL and power loss included), so a killed job never
blocks the next run, and a second job on the same output is refused in one line naming the
holder's pid. While it holds the lock a job may remove the stale temporaries an earlier run on
the same output left (``atomic.remove_stale``): no live job can own them.
"""
from __future__ import annotations

import contextlib
import os
import stat
import time
from pathlib import Path

from .errors import SrganError

HEADER = "srgan_fast job lock\n"
_ATTEMPTS = 5          # the file may be unlinked by its ending holder between open and flock


def lock_path(output) -> Path:
    output = Path(output)
    return output.parent / f".{output.name}.lock"


@contextlib.contextmanager
def hold(output, path=None):
    """Hold the lock on ``output`` for the block (its file: ``path``, by default beside the
    output); ``SrganError`` if another job holds it."""
    try:
        import fcntl
    except ImportError:          # not POSIX: no lock (the project runs on Linux)
        yield
        return
    path = Path(path) if path is not None else lock_path(output)
    for _ in range(_ATTEMPTS):
        fd = _open(path, output)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            who = f"pid {pid}" if pid else "another process"
            raise SrganError(f"{output}: another srgan_fast job ({who}) is writing this output; "
                             f"wait for it to end or stop it, then run again") from None
        # The holder before us unlinks the file as it ends: locking that unlinked file proves
        # nothing, so the lock counts only if the path still names the file we hold.
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:
        raise SrganError(f"{path}: could not take the job's lock (its file keeps changing)")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{HEADER}{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)       # while still held: a waiting job then sees another file
        os.close(fd)


def _open(path: Path, output) -> int:
    """Open (or create) the lock file: never through a symbolic link, never a user's file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise SrganError(f"{output}: cannot create the job's lock file {path} ({e.strerror}); "
                         f"if it is a link, remove it") from None
    st = os.fstat(fd)
    content = os.pread(fd, len(HEADER), 0) if stat.S_ISREG(st.st_mode) else b"x"
    if not stat.S_ISREG(st.st_mode) or (st.st_size and content != HEADER.encode()):
        os.close(fd)
        raise SrganError(f"{path}: exists and is not a srgan_fast lock file; move it away and run "
                         f"again")
    return fd


def _holder(fd: int) -> int | None:
    """The pid the lock's holder wrote (None if it has not written it yet)."""
    for _ in range(20):           # it writes it just after taking the lock
        text = os.pread(fd, 200, 0).decode(errors="replace")
        lines = text.split("\n")
        if text.startswith(HEADER) and len(lines) > 1 and lines[1].strip().isdigit():
            return int(lines[1])
        time.sleep(0.005)
    return None
