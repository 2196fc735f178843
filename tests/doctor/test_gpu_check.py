"""bench/gpu_check.sh, the one prepared GPU script, as far as a CPU machine can check it: its
syntax, its plan (dry run), and that it runs every step, logs each one, keeps going after a
failure and summarises, with a stand-in for Python that fails some steps on purpose."""
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = "bench/gpu_check.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="needs bash and coreutils timeout")


def run(*args, env=None):
    return subprocess.run(["bash", SCRIPT, *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", SCRIPT], cwd=REPO).returncode == 0


def test_dry_run_lists_the_steps_within_eight_minutes(tmp_path):
    r = run("--dry-run", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    steps = re.findall(r"^(\S+)\s+limit\s+(\d+)s\s+(.*)$", r.stdout, re.M)
    names = [s[0] for s in steps]
    assert names == ["env", "gpu-tests", "doctor", "kernels", "bench"]
    commands = {name: cmd for name, _, cmd in steps}
    assert "-m pytest -q -m gpu" in commands["gpu-tests"]
    assert "-m srgan_fast.doctor --device cuda" in commands["doctor"] and "doctor-cuda.json" in commands["doctor"]
    assert "bench/bench_kernels.py" in commands["kernels"]
    assert "-m bench --device cuda --quick" in commands["bench"]
    assert sum(int(limit) for _, limit, _ in steps) <= 480 - 20  # room for the kill-after and the summary
    assert "optional: set SRGAN_FAST_TRAIN_STATE" in r.stdout
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_dry_run_shows_the_training_step_when_asked(tmp_path):
    r = run("--dry-run", str(tmp_path / "out"),
            env={"SRGAN_FAST_TRAIN_STATE": "/runs/g", "SRGAN_FAST_TRAIN_ARGS": "--phase srgan --data /d"})
    line = next(x for x in r.stdout.splitlines() if x.startswith("train"))
    assert "-m srgan_fast.train --device cuda --resume --out /runs/g --time-limit" in line
    assert line.endswith("--phase srgan --data /d")


def test_usage_without_a_folder():
    r = run(env={"OUT": ""})
    assert r.returncode == 2 and r.stderr.startswith("usage:")


STUB = """#!/usr/bin/env bash
echo "$*" >> "$STUB_CALLS"
case "$*" in
  *"-m pytest"*) echo "12 passed"; exit 0 ;;
  *"srgan_fast.doctor --show"*) echo "doctor table from $4"; exit 0 ;;
  *"srgan_fast.doctor"*) echo "1 failed"; exit 1 ;;
  *bench_kernels.py*) exit 0 ;;
  *"-m bench"*) echo "bench broke" >&2; exit 3 ;;
esac
exit 0
"""


def test_every_step_runs_and_is_logged_and_a_failure_does_not_stop_the_rest(tmp_path):
    stub = tmp_path / "python"
    stub.write_text(STUB)
    stub.chmod(0o755)
    calls, out = tmp_path / "calls.txt", tmp_path / "out"
    r = run(str(out), env={"PYTHON": str(stub), "STUB_CALLS": str(calls), "SRGAN_FAST_TRAIN_STATE": ""})
    assert r.returncode == 1  # the doctor and bench steps failed
    summary = (out / "summary.txt").read_text()
    status = dict(re.findall(r"^(\S+)\s+(\S+)\s+\d+\s+", summary, re.M))
    assert status["gpu-tests"] == "ok" and status["kernels"] == "ok"
    assert status["doctor"] == "FAIL(1)" and status["bench"] == "FAIL(3)"
    assert status["train"] == "SKIP" and "SRGAN_FAST_TRAIN_STATE not set" in summary
    assert "12 passed" in (out / "logs" / "gpu-tests.log").read_text()
    assert "bench broke" in (out / "logs" / "bench.log").read_text()
    made = calls.read_text()
    assert "-m bench --device cuda --quick" in made and "bench/bench_kernels.py" in made
    with tarfile.open(out / "gpu_check.tar.gz") as tar:
        names = tar.getnames()
    assert "./summary.txt" in names and "./logs/doctor.log" in names


def test_steps_that_cannot_fit_the_deadline_are_skipped_not_started(tmp_path):
    stub = tmp_path / "python"
    stub.write_text(STUB)
    stub.chmod(0o755)
    out = tmp_path / "out"
    r = run(str(out), env={"PYTHON": str(stub), "STUB_CALLS": str(tmp_path / "calls"), "GPU_CHECK_BUDGET": "10"})
    assert r.returncode == 0
    summary = (out / "summary.txt").read_text()
    assert len(re.findall(r"^\S+ +SKIP +0  no time left in the 10 s budget$", summary, re.M)) == 5
    assert not (tmp_path / "calls").exists()  # nothing was started
