"""One job per output (srgan_fast.joblock): the lock names its holder, dies with it, and never
writes through a link or into a file that is not a srgan_fast lock."""
import os
import subprocess
import sys

import pytest

from srgan_fast.errors import SrganError
from srgan_fast.joblock import hold, lock_path


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "x.mp4"
    with hold(out):
        assert lock_path(out).read_text().splitlines()[1] == str(os.getpid())
        with pytest.raises(SrganError, match=rf"x.mp4: another srgan_fast job \(pid {os.getpid()}\)"):
            with hold(out):
                pass
    assert not lock_path(out).exists()
    with hold(out):                       # released: the next job gets it
        pass


def test_a_killed_holder_never_blocks_the_next_job(tmp_path):
    out = tmp_path / "x.mp4"
    code = ("import os, sys; from srgan_fast.joblock import hold\n"
            f"with hold({str(out)!r}):\n    print('held', flush=True); os.kill(os.getpid(), 9)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -9 and proc.stdout == "held\n"
    assert lock_path(out).exists()        # left by the SIGKILL, its lock released by the kernel
    with hold(out):
        assert lock_path(out).read_text().splitlines()[1] == str(os.getpid())


def test_a_link_or_a_foreign_file_at_the_lock_path_is_left_alone(tmp_path):
    out, target = tmp_path / "x.mp4", tmp_path / "target.txt"
    target.write_text("mine")
    lock_path(out).symlink_to(target)
    with pytest.raises(SrganError, match="lock file"):
        with hold(out):
            pass
    assert target.read_text() == "mine" and lock_path(out).is_symlink()
    lock_path(out).unlink()
    lock_path(out).write_text("my notes")
    with pytest.raises(SrganError, match="not a srgan_fast lock file"):
        with hold(out):
            pass
    assert lock_path(out).read_text() == "my notes"
