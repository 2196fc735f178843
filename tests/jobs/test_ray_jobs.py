"""Ray: a local instance listens on loopback only and leaves nothing behind; never more workers
than the cluster has; unplaceable workers and an address without a cluster end in one line
within a bounded time. Local instances get at most 2 CPUs and are always shut down."""
import fcntl
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install 'srgan_fast[distributed]')")
psutil = pytest.importorskip("psutil")

from jobfixtures import (REPO, cli_args, clip, decoded, reference, start_job,  # noqa: E402,F401
                         wait_for, weights)
from srgan_fast import video  # noqa: E402
from srgan_fast.errors import SrganError  # noqa: E402
from srgan_fast.jobs.ray_local import LocalRay, listening_beyond_loopback  # noqa: E402


def _two_cpus():
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])


def _stale_and_live_ray_folders(tmpdir):
    """A folder a killed job left (its lock free) and one of a running job (its lock held)."""
    stale, live = tmpdir / "srgan-ray-stale000", tmpdir / "srgan-ray-live0000"
    for f in (stale, live):
        (f / "session_x").mkdir(parents=True)
        (f / "owner.lock").touch()
    fd = os.open(live / "owner.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return stale, live, fd


def test_local_ray_listens_on_loopback_only_and_leaves_nothing(clip, weights, reference,
                                                               tmp_path_factory, request):
    base = tmp_path_factory.mktemp("r")
    home, tmpdir = base / "home", Path(tempfile.mkdtemp(prefix="srt", dir="/tmp"))  # short:
    home.mkdir()                                       # Ray's socket paths must fit 107 bytes
    request.addfinalizer(lambda: shutil.rmtree(tmpdir, ignore_errors=True))
    stale, live, live_fd = _stale_and_live_ray_folders(tmpdir)
    dst, work = base / "out.mp4", base / "out.mp4.parts"
    proc = start_job(cli_args(clip, dst, weights, "--ray", "--workers", "3"), preexec_fn=_two_cpus,
                     environ={"HOME": str(home), "TMPDIR": str(tmpdir)},
                     block_segment=1, barrier=base / "b", release=base / "go")
    wait_for(base / "b", proc)        # Ray up, its workers running, one blocked in a part
    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    listening = [c for p in tree for c in p.net_connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN]
    assert len(listening) >= 3        # GCS, raylet, workers, agents...
    assert listening_beyond_loopback(tree) == []
    (base / "go").touch()
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    cpus = min(2, len(os.sched_getaffinity(0)))
    assert f"--workers 3: the Ray cluster has {cpus} CPUs; running {cpus} workers" in err
    assert decoded(dst) == reference[1]
    assert sorted(os.listdir(tmpdir)) == [live.name]      # its own folder and the stale one gone
    assert not glob.glob(f"/tmp/ray/session_*_{proc.pid}")
    assert os.listdir(home) == []                          # no ~/.ray/auth_token
    assert not work.exists()
    os.close(live_fd)


def test_the_loopback_check_sees_a_socket_on_every_interface():
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    s.listen()
    try:
        found = listening_beyond_loopback([psutil.Process()])
        assert any(f.startswith(f"0.0.0.0:{s.getsockname()[1]} ") for f in found), found
    finally:
        s.close()


CLIENT = """
import logging, sys
import ray
try:
    ray.init(address=sys.argv[1], logging_level=logging.ERROR, log_to_driver=False)
except Exception:
    print("refused")
else:
    print("connected", ray.cluster_resources().get("CPU"))
"""


def _client(address, home, token=None):
    """Another program of this machine submitting to the instance, with or without its token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(home), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               RAY_gcs_server_port_wait_time_s="1", RAY_py_gcs_connect_timeout_s="5")
    if token:
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    return subprocess.run([sys.executable, "-c", CLIENT, address], env=env, capture_output=True,
                          text=True, timeout=300).stdout.strip()


def test_the_local_instance_takes_only_its_token_and_unplaceable_workers_fail_in_one_line(
        monkeypatch, tmp_path):
    from ray.util.placement_group import placement_group

    from srgan_fast.jobs.engine_spec import EngineSpec
    from srgan_fast.jobs.ray_runner import RayRunner

    monkeypatch.setenv("HOME", str(tmp_path))
    local = LocalRay(1)
    with local as ray:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:")
        assert _client(address, tmp_path) == "refused"
        assert _client(address, tmp_path, os.environ["RAY_AUTH_TOKEN"]) == "connected 1.0"
        hog = placement_group([{"CPU": 1}])             # another job holds the only CPU
        ray.get(hog.ready(), timeout=60)
        with pytest.raises(SrganError, match=r"could not place 1 worker.*within 1 s.*--workers"):
            RayRunner(EngineSpec(backend="torch"), "local", 3, timeout=1)._pool(ray, 3)
    assert not local.folder.exists() and os.listdir(tmp_path) == []
    assert not glob.glob(f"/tmp/ray/session_*_{os.getpid()}")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_without_a_cluster_is_one_line(clip, weights, tmp_path, capsys):
    port = _free_port()
    assert video.main(cli_args(clip, tmp_path / "o.mp4", weights, "--ray", f"127.0.0.1:{port}")) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"error: --ray 127.0.0.1:{port}: no Ray cluster answers there "
                                f"(Connection refused); start one with `ray start --head`, or "
                                f"check the address and the firewall"]
    assert list(tmp_path.iterdir()) == []               # refused before the job made anything


def test_an_address_that_answers_but_is_no_cluster_times_out_in_one_line(clip, weights, tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()                   # accepts connections, never speaks Ray's protocol
    port = server.getsockname()[1]
    try:
        proc = subprocess.run([sys.executable, "-m", "srgan_fast.video",
                               *cli_args(clip, tmp_path / "o.mp4", weights, "--ray",
                                         f"127.0.0.1:{port}", "--ray-timeout", "2")],
                              stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=300)
    finally:
        server.close()
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"error: --ray 127.0.0.1:{port}: cannot connect")
