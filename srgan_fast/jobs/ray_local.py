"""A local Ray instance for one job: reachable from this machine only, gone when the job ends.

Ray binds its services (GCS, raylet, object manager, workers, dashboard and runtime-env agents)
to the node's address, and it replaces a loopback address asked of it (``_node_ip_address`` or
``ray start --node-ip-address 127.0.0.1``) by the machine's routable one, so that other nodes can
join. A job's own instance needs no other node, so:

- ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (Ray's single-machine switch; the name ties it to
  Windows and macOS, but it is read everywhere) keeps the node address on loopback, and every
  service then listens on 127.0.0.1 only; the dashboard is off.
- Token authentication with a fresh token for this job, passed in the environment
  (``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN``): other users of this machine cannot submit work either,
  and nothing is written to ``~/.ray``. Ray versions without token authentication ignore them.
- Ray's files (session, logs, sockets, spilled objects) go to a temporary folder of the job,
  removed after; one that a killed job left is removed by the next job's local instance
  (recognised by its name and by the lock its job held, which the kernel released).

After the start, every listening socket of the Ray processes is checked (psutil): one that is
not on loopback stops the job, whatever a Ray version does (fail closed).
"""
from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import shutil
import socket
import stat
import sys
import tempfile
from pathlib import Path

from ..errors import SrganError, require

_PREFIX = "srgan-ray-"
_OWNER = "owner.lock"
_LOCAL_OBJECT_STORE = 256 * 2**20     # items and results are small: paths and checksums


_TOKEN: list = []


def _env() -> dict:
    """The environment of a local instance. One token per process: Ray caches the token it read
    and its authentication mode for the life of the process."""
    import secrets

    if not _TOKEN:
        _TOKEN.append(secrets.token_hex(32))
    return {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": _TOKEN[0]}


@contextlib.contextmanager
def environment(values: dict):
    """``os.environ`` with ``values`` inside the block, restored after."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class LocalRay:
    """``with LocalRay(cpus) as ray:`` a started local instance, stopped and removed after."""

    def __init__(self, cpus: int, log=None):
        self.cpus, self.log = cpus, log or (lambda m: print(m, file=sys.stderr))
        self.folder = self.owner = None
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        try:
            self._stack.callback(reread_environment)         # last: after the restore below
            self._stack.enter_context(environment(_env()))
            reread_environment()
            ray = require("ray", "distributed", "ray")
            require("psutil", "distributed")
            # Read at import: an earlier import of ray (a test, a notebook) must see it too.
            consts = sys.modules.get("ray._private.ray_constants")
            if consts is not None and getattr(consts, "ENABLE_RAY_CLUSTER", False):
                consts.ENABLE_RAY_CLUSTER = False
                self._stack.callback(setattr, consts, "ENABLE_RAY_CLUSTER", True)
            remove_stale_folders(self.log)
            self.folder, self.owner = _make_folder()
            self._stack.callback(self._remove_folder)
            self._before = {p.pid for p in self.processes()}
            self._open_before = set(listening_beyond_loopback(self.processes()))   # not Ray's
            self._stack.callback(self._shutdown, ray)
            try:
                ray.init(num_cpus=self.cpus, object_store_memory=_LOCAL_OBJECT_STORE,
                         _temp_dir=str(self.folder), _node_ip_address="127.0.0.1",
                         include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR, configure_logging=False)
            except (OSError, RuntimeError, ValueError, ConnectionError) as e:
                first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
                raise SrganError(f"--ray: could not start a local Ray instance ({first})") from None
            self.check_loopback()
        except BaseException:
            self._stack.close()
            raise
        return ray

    def __exit__(self, *exc):
        self._stack.close()

    def processes(self):
        import psutil

        me = psutil.Process()
        return [me, *me.children(recursive=True)]

    def check_loopback(self) -> None:
        """Stop the job if any process of the instance listens beyond loopback."""
        open_ = [s for s in listening_beyond_loopback(self.processes())
                 if s not in self._open_before]
        if open_:
            raise SrganError(f"the local Ray instance listens beyond this machine ({open_[0]}); "
                             f"stopped it. Use a Ray version from the README, or --workers")

    def _shutdown(self, ray) -> None:
        import psutil

        procs = [p for p in self.processes() if p.pid not in self._before]   # Ray's, not others
        ray.shutdown()
        _, alive = psutil.wait_procs(procs, timeout=15)
        for p in alive:          # the instance's own processes, left by a shutdown cut short
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=5)

    def _remove_folder(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)    # never follows links in it
        os.close(self.owner)


def reread_environment() -> None:
    """Make an already imported Ray read the environment again (its configuration and its cached
    token, as Ray's own tests do); a Ray imported later reads it anyway."""
    raylet = sys.modules.get("ray._raylet")
    if raylet is None:
        return
    with contextlib.suppress(Exception):
        raylet.Config.initialize("")
        loader = getattr(raylet, "AuthenticationTokenLoader", None)
        if loader is not None:
            loader.instance().reset_cache()


def listening_beyond_loopback(processes) -> list[str]:
    """'ADDRESS:PORT (process)' for every TCP listening or UDP socket of ``processes`` bound to
    an address other than loopback (0.0.0.0 and :: included)."""
    import psutil

    found = []
    for p in processes:
        try:
            conns = p.net_connections(kind="inet") if hasattr(p, "net_connections") \
                else p.connections(kind="inet")
            name = p.name()
        except psutil.Error:
            continue
        for c in conns:
            reachable = c.status == psutil.CONN_LISTEN if c.type == socket.SOCK_STREAM \
                else not c.raddr                      # UDP: any unconnected bound socket
            if c.laddr and reachable and not is_loopback(c.laddr.ip):
                host = f"[{c.laddr.ip}]" if ":" in c.laddr.ip else c.laddr.ip
                found.append(f"{host}:{c.laddr.port} ({name})")
    return found


def is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def _base() -> Path:
    """Where the instance's folder goes: the temporary folder, if short enough for Ray's socket
    paths (up to 83 characters are added under it: folder, session, socket name; AF_UNIX allows
    107), else /tmp."""
    base = Path(tempfile.gettempdir())
    return base if len(str(base)) <= 24 else Path("/tmp")


def _make_folder():
    """A new folder for Ray's files, and a held lock that marks it as in use."""
    import fcntl

    folder = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=_base()))
    fd = os.open(folder / _OWNER, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return folder, fd


def remove_stale_folders(log) -> list[Path]:
    """Remove the folders of local instances whose job is gone: our name, owned by this user,
    a real folder (not a link) whose owner lock nobody holds."""
    import fcntl

    removed = []
    base = _base()
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    for name in names:
        if not re.fullmatch(re.escape(_PREFIX) + r"[a-z0-9_]{8}", name):
            continue
        folder = base / name
        try:
            st = os.lstat(folder)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                continue
            fd = os.open(folder / _OWNER, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)        # its job is running
            continue
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)
        removed.append(folder)
        log(f"note: removed {folder}, the Ray folder of a job that was killed")
    return removed
