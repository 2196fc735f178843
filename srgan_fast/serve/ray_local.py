"""Starting Ray for the service: join a cluster, or start a local instance on loopback only.

Kept in one small function so one home can later serve every Ray start-up (the job runner's
``jobs/ray_runner`` starts its own the same way).

Loopback: ``ray.init(_node_ip_address="127.0.0.1")`` alone is not enough in Ray 2.60, which
turns a loopback node address into the machine's external one (``resolve_ip_for_localhost``),
so the GCS, raylet and workers listen on every interface. Ray keeps everything on loopback
when its cluster mode is off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, what it does on macOS and
Windows): a local single-node instance needs nothing else. Measured with ``ss -ltnp``: every
socket of the instance on 127.0.0.1 with it, the external address and 0.0.0.0 without.
"""
from __future__ import annotations

import logging
import os

from ..errors import SrganError, require

LOOPBACK = "127.0.0.1"
_CLUSTER_MODE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def start_ray(address: str | None = None, num_cpus: int | None = None,
              object_store_bytes: int = 1 << 30) -> bool:
    """Connect to the Ray cluster at ``address``, or start a local instance bound to loopback;
    True when this call started it (the caller then shuts it down)."""
    ray = require("ray", "serve", "ray")
    if ray.is_initialized():
        return False
    quiet = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 configure_logging=False)
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise SrganError(f"--address {address}: cannot connect ({str(e).splitlines()[0][:200]})") from None
        return True
    os.environ[_CLUSTER_MODE] = "0"   # for the processes the instance starts
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # for this process, when ray was imported before
    ray.init(_node_ip_address=LOOPBACK, num_cpus=num_cpus, object_store_memory=object_store_bytes, **quiet)
    return True


def keep_replica_on_loopback() -> None:
    """Ray Serve replicas open an inter-deployment gRPC server on ``[::]:0`` (every interface;
    hard-coded in ``replica._on_initialized``, through ``add_insecure_port`` in Ray 2.57 and a
    TLS-aware helper in 2.60) whatever the node address. On a loopback node (the local instance
    above) this process's gRPC servers bind 127.0.0.1 instead: callers reach them at the node
    address, which is loopback there. Patched on the server class rather than in Serve, so it
    holds across Serve versions; called from each replica's constructor, which runs before that
    server starts; does nothing on a cluster node."""
    import ray

    if ray.util.get_node_ip_address() != LOOPBACK:
        return
    from grpc.aio import _server

    for name in ("add_insecure_port", "add_secure_port"):
        original = getattr(_server.Server, name)
        if getattr(original, "loopback", False):
            continue

        def bind_loopback(server, address: str, *rest, _original=original):
            host, _, port = address.rpartition(":")
            if host in ("[::]", "0.0.0.0", ""):
                address = f"{LOOPBACK}:{port}"
            return _original(server, address, *rest)

        bind_loopback.loopback = True
        setattr(_server.Server, name, bind_loopback)
