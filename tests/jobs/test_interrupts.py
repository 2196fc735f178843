"""Interrupted video jobs (Ctrl-C, SIGTERM, SIGKILL, a killed worker, a second job at once) resume
to exactly the frames of an uninterrupted run and leave nothing behind.

Deterministic: the job's engine blocks at a known point (``jobhooks``: after N finished parts,
until the test has signalled), so no test races the machine's speed.
"""
import os
import signal

import pytest

from jobfixtures import (audio_packets, cli_args, clip, decoded, done_parts,  # noqa: F401
                         reference, start_job, wait_for, weights)
from srgan_fast import video

psutil = pytest.importorskip("psutil")


def _workers(pid):
    try:
        return [c for c in psutil.Process(pid).children()
                if "spawn_main" in " ".join(c.cmdline())]
    except psutil.Error:
        return []


@pytest.mark.parametrize("first_signal", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_then_sigkill_then_resume_gives_the_same_frames(first_signal, clip, weights,
                                                                  reference, tmp_path):
    dst, work = tmp_path / "out.mp4", tmp_path / "out.mp4.parts"
    argv = cli_args(clip, dst, weights, "--batch", "1")
    proc = start_job(argv, block_at=1, work=work, barrier=tmp_path / "b1")
    wait_for(tmp_path / "b1", proc)                  # one part done, the second one blocked
    proc.send_signal(first_signal)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    assert not dst.exists() and done_parts(work) == 1
    proc = start_job(argv, block_at=2, work=work, barrier=tmp_path / "b2")
    wait_for(tmp_path / "b2", proc)
    proc.kill()                                      # SIGKILL: no chance to clean up
    proc.communicate(timeout=60)
    assert not dst.exists() and done_parts(work) == 2
    proc = start_job(argv)                           # the lock died with it: nothing blocks
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert [line for line in err.splitlines() if line.startswith("resuming:")] == \
        ["resuming: 2 of 4 segments already done"]
    assert decoded(dst) == reference[1]
    assert audio_packets(dst) == audio_packets(clip)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b1", "b2", "out.mp4"]


def test_a_killed_worker_is_replaced_and_its_part_redone(clip, weights, reference, tmp_path):
    dst, work = tmp_path / "out.mp4", tmp_path / "out.mp4.parts"
    proc = start_job(cli_args(clip, dst, weights, "--workers", "2", "--batch", "1"),
                     block_at=1, work=work, barrier=tmp_path / "b")
    blocked = int(wait_for(tmp_path / "b", proc))    # a worker in the middle of a part
    assert blocked in [w.pid for w in _workers(proc.pid)]
    os.kill(blocked, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert decoded(dst) == reference[1]
    assert not work.exists()


def test_ctrl_c_stops_the_workers_and_a_killed_job_takes_its_workers_along(
        clip, weights, reference, tmp_path):
    dst, work = tmp_path / "out.mp4", tmp_path / "out.mp4.parts"
    argv = cli_args(clip, dst, weights, "--workers", "2", "--batch", "1")
    proc = start_job(argv, block_at=1, work=work, barrier=tmp_path / "b1")
    wait_for(tmp_path / "b1", proc)
    workers = _workers(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    assert not dst.exists() and not list(work.glob(".*partial*"))
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    done = done_parts(work)
    # SIGKILL the job itself while a worker is in a part: its workers die with it (none goes on
    # writing into the work folder once the next run holds the lock).
    proc = start_job(argv, block_at=done + 1, work=work, barrier=tmp_path / "b2")
    wait_for(tmp_path / "b2", proc)
    workers = _workers(proc.pid)
    assert workers
    proc.kill()
    proc.communicate(timeout=60)
    _, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive, "workers outlived their job"
    done = done_parts(work)          # the other worker may have finished one more part
    proc = start_job(argv)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and f"resuming: {done} of 4" in err, err
    assert decoded(dst) == reference[1]


def test_sigkill_during_the_join_leaves_a_temporary_the_next_run_removes(clip, weights,
                                                                         reference, tmp_path):
    dst = tmp_path / "out.mp4"
    mine = [tmp_path / ".out.mine.partial.mp4", tmp_path / ".out.abcdefgh.partial.mkv",
            tmp_path / ".out.x.abcdefgh.partial.mp4", tmp_path / ".other.abcdefgh.partial.mp4"]
    for f in mine:                                   # look like temporaries, are not this job's
        f.write_text("the user's")
    argv = cli_args(clip, dst, weights)
    proc = start_job(argv, block_join=tmp_path / "joined")
    tmp = wait_for(tmp_path / "joined", proc)        # the whole output, under its temporary name
    assert os.path.basename(tmp).startswith(".out.") and os.path.getsize(tmp) > 0
    proc.kill()
    proc.communicate(timeout=60)
    assert os.path.exists(tmp) and not dst.exists()
    proc = start_job(argv)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"removed {os.path.basename(tmp)}" in err
    assert not os.path.exists(tmp) and decoded(dst) == reference[1]
    assert all(f.read_text() == "the user's" for f in mine)
    assert not (tmp_path / "out.mp4.parts").exists()


def test_a_second_job_on_the_same_output_is_refused_naming_the_first(clip, weights, reference,
                                                                    tmp_path, capsys):
    dst, work = tmp_path / "out.mp4", tmp_path / "out.mp4.parts"
    argv = cli_args(clip, dst, weights)
    proc = start_job(argv, block_at=1, work=work, barrier=tmp_path / "b",
                     release=tmp_path / "go")
    wait_for(tmp_path / "b", proc)
    before = sorted(p.name for p in work.iterdir())
    for extra in ([], ["--restart"], ["--segment-seconds", "0"]):
        capsys.readouterr()
        assert video.main(argv + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"(pid {proc.pid})" in err, err
    assert sorted(p.name for p in work.iterdir()) == before     # nothing touched
    (tmp_path / "go").write_text("")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert decoded(dst) == reference[1] and not work.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "go", "out.mp4"]   # lock gone
