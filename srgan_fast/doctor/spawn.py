"""Run one backend's rows in a child process (``worker.py``) and turn whatever happens to it
(finished, crashed, killed for memory, timed out) into rows.

The child's stderr (build logs, per-row lines) is passed through as it comes and its last lines
are kept, so a crash is reported with what the child said last. The child is this process's own,
stopped by its handle on a time-out.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path

from .worker import empty_row

TAIL = 8


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed: out of memory?)" if -code == signal.SIGKILL else ""
        return f"the worker process died of {name}{hint}"
    return f"the worker process exited with status {code}"


def run_backend(spec: dict, timeout: float) -> list[dict]:
    """The rows of ``spec["backend"]`` for ``spec["precisions"]``, one per precision, always."""
    with tempfile.TemporaryDirectory(prefix="srgan_fast_doctor_") as tmp:
        spec = {**spec, "out": str(Path(tmp) / "rows.json")}
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        tail: deque[str] = deque(maxlen=TAIL)
        proc = subprocess.Popen([sys.executable, "-m", "srgan_fast.doctor.worker", str(spec_path)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, errors="replace", env=os.environ.copy())

        def pump():
            for line in proc.stderr:
                tail.append(line.rstrip())
                sys.stderr.write(line)
                sys.stderr.flush()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout=timeout)
            ended = None if code == 0 else _describe_exit(code)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            ended = f"timed out after {timeout:.0f} s (--timeout)"
        reader.join(timeout=5)
        result = {}
        if Path(spec["out"]).is_file():
            result = json.loads(Path(spec["out"]).read_text())
    rows = result.get("rows", [])
    if result.get("error"):  # the weights or inputs could not be used: one line for the backend
        ended = result["error"]
    done = {r["asked"] for r in rows}
    for asked in spec["precisions"]:
        if asked in done:
            continue
        row = empty_row(spec["backend"], asked)
        last = " | ".join(line for line in tail if line.strip())[-600:]
        row.update(status="FAIL", reason=f"{ended or 'the worker process ended early'}"
                                         + (f"; its last lines: {last}" if last and not result.get("error") else ""))
        rows.append(row)
    return sorted(rows, key=lambda r: spec["precisions"].index(r["asked"]))
