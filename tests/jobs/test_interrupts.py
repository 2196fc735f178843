"""Interrupted video jobs (Ctrl-C, SIGTERM, SIGKILL, a killed worker, a second job at once) resume
to exactly the frames of an uninterrupted run and leave nothing behind.

Deterministic: the job's engine blocks at a known point (``jobhooks``: after N finished parts,
until the test has signalled), so no test races the machine's speed.
"""
import json
import os
import signal

import pytest

from jobfixtures import (audio_packets, cli_args, clip, decoded, done_parts,  # noqa: F401
                         reference, start_job, wait_for, weights)
from srgan_fast import video

psutil = pytest.importorskip("psutil")


def _remaining(work):
    done = json.loads((work / "manifest.json").read_text())["done"]
    return sorted(set(range(4)) - {int(k) for k in done})


def _workers(pid):
    try:
        return [c for c in psutil.Process(pid).children()
                if "spawn_main" in " ".join(c.cmdline())]
    except psutil.Error:
        return []


def test_ctrl_c_then_sigkill_then_resume_gives_the_same_frames(clip, weights, reference,
                                                               tmp_path):
    dst, work = tmp_path / "out.mp4", tmp_path / "out.mp4.parts"
    argv = cli_args(clip, dst, weights, "--batch", "1")
    proc = start_job(argv, block_segment=1, barrier=tmp_path / "b1")
    wait_for(tmp_path / "b1", proc)                  # one part done, the second one blocked
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    assert not dst.exists() and done_parts(work) == 1
    proc = start_job(argv, block_segment=2, barrier=tmp_path / "b2")
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


def test_sigterm_stops_a_job_like_ctrl_c(clip, weights, tmp_path):
    dst, work = tmp_path / "out.mp4", tmp_path / "out.mp4.parts"
    proc = start_job(cli_args(clip, dst, weights, "--batch", "1"), block_segment=1,
                     barrier=tmp_path / "b")
    wait_for(tmp_path / "b", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    assert done_parts(work) == 1 and sorted(p.name for p in work.iterdir()) == \
        ["manifest.json", "part-00000.mov"]         # its temporaries removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "out.mp4.parts"]   # lock gone


def test_workers_stop_on_ctrl_c_die_with_a_killed_job_and_are_replaced_when_killed(
        clip, weights, reference, tmp_path):
    dst, work = tmp_path / "out.mp4", tmp_path / "out.mp4.parts"
    argv = cli_args(clip, dst, weights, "--workers", "2", "--batch", "1")
    proc = start_job(argv, block_segment=1, barrier=tmp_path / "b1")
    wait_for(tmp_path / "b1", proc)
    workers = _workers(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    assert not dst.exists() and not list(work.glob(".*partial*"))
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    # SIGKILL the job itself while a worker is in a part: its workers die with it (none goes on
    # writing into the work folder once the next run holds the lock).
    proc = start_job(argv, block_segment=_remaining(work)[0], barrier=tmp_path / "b2")
    wait_for(tmp_path / "b2", proc)
    workers = _workers(proc.pid)
    assert workers
    proc.kill()
    proc.communicate(timeout=60)
    _, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive, "workers outlived their job"
    # SIGKILL a worker in the middle of a part: a new worker replaces it and redoes the part.
    done = done_parts(work)          # the other worker may have finished one more part
    proc = start_job(argv, block_segment=_remaining(work)[0], barrier=tmp_path / "b3")
    blocked = int(wait_for(tmp_path / "b3", proc))
    assert blocked in [w.pid for w in _workers(proc.pid)]
    os.kill(blocked, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and f"resuming: {done} of 4" in err, err
    assert decoded(dst) == reference[1]
    assert not work.exists()


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
    proc = start_job(argv, block_segment=1, barrier=tmp_path / "b", release=tmp_path / "go")
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
