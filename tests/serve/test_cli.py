"""``python -m srgan_fast.serve`` as a user runs it: options, one-line errors, and a real service
(shipped SRResNet on the torch engine) that answers like the CLI, listens on loopback only and
leaves nothing running after SIGTERM."""
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from serve_helpers import free_port, noise, png_bytes

from srgan_fast.serve.cli import parse_args


def run_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "srgan_fast.serve", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_help_shows_every_default():
    out = run_cli("--help").stdout
    for text in ("default: 127.0.0.1", "default: 8000", "default: 32.0", "default: 4000000", "default: 120.0",
                 "default: 8)", "default: 16)", "default: 4)", "default: 10.0"):
        assert text in " ".join(out.split()), text
    assert parse_args([]).host == "127.0.0.1"


@pytest.mark.parametrize("args, says", [
    (["--max-ongoing", "2", "--max-batch", "4"], "--max-ongoing (2) must be at least --max-batch (4)"),
    (["--max-pixels", "100000000"], "--max-pixels must be in 1..64,000,000"),
    (["--port", "70000"], "--port must be in 1..65535"),
    (["--models", "srresnet", "--model", "srgan"], "--model srgan is not one of the served models"),
    (["--replicas", "0"], "--replicas must be >= 1")])
def test_bad_options_are_one_line_errors(args, says):
    r = run_cli(*args)
    assert r.returncode == 2 and r.stderr.strip() == f"error: {says}" or says in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_ray_too_old_for_the_service_is_a_one_line_error(monkeypatch, capsys):
    import ray

    from srgan_fast.serve import cli

    monkeypatch.setattr(ray, "__version__", "2.52.1")
    assert cli.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: ray 2.52.1 is too old for the service (needs 2.57.0 or newer): " \
                  "pip install 'ray[serve]>=2.57.0'", err
    setup = (Path(__file__).parents[2] / "setup.py").read_text()
    assert f'"ray[serve]>={".".join(map(str, cli.MIN_RAY_SERVE))}"' in setup   # one floor, said twice


def _listening(pids):
    import psutil

    return [c.laddr for c in psutil.net_connections("inet") if c.status == "LISTEN" and c.pid in pids]


@pytest.mark.slow
def test_serves_the_cli_result_on_loopback_and_stops_on_sigterm(tmp_path):
    import psutil

    from srgan_fast import engines
    from srgan_fast.checkpoints import model_weights
    from srgan_fast.image.job import upscale_file

    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "srgan_fast.serve", "--backend", "torch", "--precision", "fp32",
                             "--models", "srresnet", "--model", "srresnet", "--port", str(port)],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for line in proc.stderr:  # until it says where it serves (or exits)
            lines.append(line)
            if "serving on" in line:
                break
        assert f"serving on http://127.0.0.1:{port}/" in "".join(lines), "".join(lines)
        url = f"http://127.0.0.1:{port}/"
        data = png_bytes(noise(32, 28, seed=9))
        r = requests.post(url + "v1/upscale", files={"file": ("x.png", data, "image/png")}, timeout=120)
        assert r.status_code == 200, r.text
        assert Image.open(io.BytesIO(r.content)).size == (112, 128)
        (tmp_path / "x.png").write_bytes(data)
        with engines.open_engine("torch", "fp32", weights=model_weights("srresnet")) as engine:
            upscale_file(engine, tmp_path / "x.png", tmp_path / "cli.png")
        served = np.asarray(Image.open(io.BytesIO(r.content)), dtype=np.int16)
        cli = np.asarray(Image.open(tmp_path / "cli.png"), dtype=np.int16)
        assert np.abs(served - cli).max() <= 1  # same engine and rules; batch of 1 vs 1: equal up to rounding

        tree = {proc.pid} | {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        listening = _listening(tree)
        assert listening and all(a.ip in ("127.0.0.1", "::ffff:127.0.0.1") for a in listening), listening

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=180) == 0
        rest = proc.stderr.read()
        assert "SIGTERM: stopping" in rest and "Traceback" not in rest
        deadline = time.monotonic() + 60  # Ray's processes exit after the driver: wait for them
        while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in tree):
            assert time.monotonic() < deadline, [p for p in tree if psutil.pid_exists(p)]
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
