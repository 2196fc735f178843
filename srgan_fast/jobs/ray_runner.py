"""Run a job's items on a Ray cluster: actors that each hold one engine, fed by Ray's
``ActorPool``; a dead actor is restarted and its item retried by Ray (``max_restarts``,
``max_task_retries``). Inputs, outputs and the work folder must be paths every node sees
(shared storage); on one machine that is trivially true.

``--ray`` alone starts a local Ray instance for the job, on loopback only, and removes it after
(``ray_local``); ``--ray ADDRESS`` joins a running cluster (``ray start --head`` on one node,
``ray start --address ...`` on the others; the README says how to secure one). Nothing waits
forever: a cluster that does not answer, or actors that cannot be placed, end in one line after
``--ray-timeout`` seconds. Ray is an optional extra: ``pip install 'srgan_fast[distributed]'``.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys

from ..errors import SrganError, require
from .engine_spec import say, usable_cores

RETRIES = 2


class _EngineActor:
    """Holds one engine for its lifetime; runs items on it."""

    def __init__(self, spec):
        self.engine, self.error = None, None
        try:
            self.engine = spec.open()
        except SrganError as e:      # reported as one line with the first item, not a traceback
            self.error = str(e)

    def run(self, item):
        if self.error:
            raise SrganError(self.error)
        return item.key, item.run(self.engine, None)


def probe_address(address: str, timeout: float) -> None:
    """A TCP connection to HOST:PORT, so an address where nothing listens fails at once in one
    line (Ray itself retries with warnings for minutes)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=min(timeout, 10)).close()
    except OSError as e:
        why = e.strerror or e.__class__.__name__
        raise SrganError(f"--ray {address}: no Ray cluster answers there ({why}); start one with "
                         f"`ray start --head`, or check the address and the firewall") from None


def connect(address: str, timeout: float):
    """ray.init(address) bounded by ``timeout``: Ray's own connection retries are cut to about
    that (its defaults retry for many minutes) and its retry warnings kept quiet; returns ray."""
    from .ray_local import environment, reread_environment

    probe_address(address, timeout)
    secs = str(max(1, math.ceil(timeout / 2)))
    bounded = {"RAY_gcs_server_port_wait_time_s": "1", "RAY_NUM_REDIS_GET_RETRIES": "1",
               "RAY_py_gcs_connect_timeout_s": secs, "RAY_gcs_rpc_server_connect_timeout_s": secs,
               "RAY_BACKEND_LOG_LEVEL": "error"}
    try:
        with environment(bounded), _held_stderr() as held:   # Ray reads it at import or reread
            reread_environment()
            ray = require("ray", "distributed", "ray")
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR, configure_logging=False)
            held.keep = True
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise SrganError(f"--ray {address}: cannot connect ({first})") from None
    finally:
        reread_environment()
    return ray


@contextlib.contextmanager
def _held_stderr():
    """Hold what is written to file descriptor 2 (Ray's C++ retry warnings) in the block: shown
    after it if ``keep`` is set (the connection worked), else dropped for the one error line."""
    import tempfile

    held = type("Held", (), {"keep": False})()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            yield held
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if held.keep:
                f.seek(0)
                sys.stderr.write(f.read().decode(errors="replace"))


class RayRunner:
    announce = ""       # the engine line (auto's choice), said once the cluster is reached

    def __init__(self, spec, address: str, actors: int | None = None, timeout: float = 60.0):
        self.spec, self.address, self.actors, self.timeout = spec, address, actors, timeout
        if address != "local":
            probe_address(address, timeout)    # before the job makes anything

    def _pool(self, ray, n_items: int):
        """Actors: one per GPU (num_gpus=1), else one per CPU (or --workers of them), never more
        than the cluster has; placed first as a group, within the timeout."""
        from ray.util.placement_group import placement_group, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        res = ray.cluster_resources()
        gpus, cpus = int(res.get("GPU", 0)), max(1, int(res.get("CPU", 1)))
        have, kind = (gpus, "GPUs") if gpus else (cpus, "CPUs")
        if self.actors and self.actors > have:
            say(f"note: --workers {self.actors}: the Ray cluster has {have} {kind}; "
                f"running {have} workers")
        count = max(1, min(self.actors or have, have, n_items))
        if gpus:
            bundle, spec = {"GPU": 1, "CPU": 1}, self.spec
        else:
            threads = max(1, cpus // count)
            bundle, spec = {"CPU": threads}, self.spec.on(self.spec.device, threads)
        group = placement_group([bundle] * count, strategy="SPREAD")
        try:
            ray.get(group.ready(), timeout=self.timeout)
        except ray.exceptions.GetTimeoutError:
            remove_placement_group(group)
            raise SrganError(f"Ray could not place {count} worker(s) of {bundle} within "
                             f"{self.timeout:g} s (the cluster has {have} {kind}, "
                             f"{_free(ray, kind)} free now); use --workers with fewer, free the "
                             f"cluster, or raise --ray-timeout") from None
        options = dict(max_restarts=RETRIES, max_task_retries=RETRIES,
                       num_cpus=bundle["CPU"], num_gpus=bundle.get("GPU", 0))
        actor = ray.remote(_EngineActor)
        return group, [actor.options(**options, scheduling_strategy=PlacementGroupSchedulingStrategy(
            placement_group=group, placement_group_bundle_index=i)).remote(spec)
            for i in range(count)]

    def run(self, items, on_done, bar=None) -> None:
        if not items:
            return
        local = None
        with contextlib.ExitStack() as stack:
            ray = sys.modules.get("ray")   # a local instance imports it in its own environment
            if ray is not None and ray.is_initialized():
                pass                       # this process is already connected: use that
            elif self.address == "local":
                from .ray_local import LocalRay
                local = LocalRay(usable_cores())
                ray = stack.enter_context(local)
            else:
                ray = connect(self.address, self.timeout)
                stack.callback(ray.shutdown)
            if self.announce:
                say(self.announce)
            self._run(ray, items, on_done, bar, local)

    def _run(self, ray, items, on_done, bar, local=None) -> None:
        from ray.util import ActorPool
        from ray.util.placement_group import remove_placement_group

        by_key = {it.key: it for it in items}
        group, actors = self._pool(ray, len(items))
        try:
            results = ActorPool(actors).map_unordered(lambda a, it: a.run.remote(it), items)
            while True:
                try:
                    key, result = next(results)
                except StopIteration:
                    break
                except ray.exceptions.RayTaskError as e:
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, SrganError):
                        raise SrganError(str(cause)) from None
                    raise
                except ray.exceptions.RayActorError as e:
                    raise SrganError(f"a Ray worker died {RETRIES + 1} times: "
                                     f"{str(e).splitlines()[0]}") from None
                if local is not None:          # the workers are up now: check their sockets too
                    local.check_loopback()
                    local = None
                on_done(by_key[key], result)
                if bar is not None:
                    bar.update(by_key[key].units)
        finally:
            for a in actors:
                with contextlib.suppress(Exception):
                    ray.kill(a)
            with contextlib.suppress(Exception):
                remove_placement_group(group)


def _free(ray, kind: str) -> str:
    try:
        return f"{ray.available_resources().get(kind[:-1], 0):g}"
    except Exception:  # noqa: BLE001 - only for the message
        return "?"
