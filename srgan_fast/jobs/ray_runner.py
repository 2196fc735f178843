"""Run a job's items on a Ray cluster: actors that each hold one engine, fed by Ray's
``ActorPool``; a dead actor is restarted and its item retried by Ray (``max_restarts``,
``max_task_retries``). Inputs, outputs and the work folder must be paths every node sees
(shared storage); on one machine that is trivially true.

``--ray`` alone starts a local Ray instance for the job and stops it after; ``--ray ADDRESS``
joins a running cluster (``ray start --head`` on one node, ``ray start --address ...`` on the
others). Ray is an optional extra: ``pip install 'srgan_fast[distributed]'``.
"""
from __future__ import annotations

import logging
import os

from ..errors import SrganError, require

RETRIES = 2
_LOCAL_OBJECT_STORE = 256 * 2**20     # items and results are small: paths and checksums


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


class RayRunner:
    def __init__(self, spec, address: str, actors: int | None = None):
        self.spec, self.address, self.actors = spec, address, actors

    def _init(self, ray) -> bool:
        """Connect (or start a local instance); True when this job started it."""
        if ray.is_initialized():
            return False
        kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                  configure_logging=False)
        if self.address == "local":
            ray.init(num_cpus=os.cpu_count() or 1, object_store_memory=_LOCAL_OBJECT_STORE, **kw)
        else:
            try:
                ray.init(address=self.address, **kw)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise SrganError(f"--ray {self.address}: cannot connect ({e})") from None
        return True

    def _pool(self, ray, n_items: int):
        """Actors: one per GPU (num_gpus=1), else one per CPU (or --workers of them)."""
        res = ray.cluster_resources()
        gpus, cpus = int(res.get("GPU", 0)), max(1, int(res.get("CPU", 1)))
        count = self.actors or gpus or cpus
        count = max(1, min(count, n_items))
        options = dict(max_restarts=RETRIES, max_task_retries=RETRIES)
        if gpus:
            options["num_gpus"] = 1
            spec = self.spec
        else:
            threads = max(1, cpus // count)
            options["num_cpus"] = threads
            spec = self.spec.on(self.spec.device, threads)
        actor = ray.remote(_EngineActor).options(**options)
        return [actor.remote(spec) for _ in range(count)]

    def run(self, items, on_done, bar=None) -> None:
        if not items:
            return
        ray = require("ray", "distributed", "ray")
        from ray.util import ActorPool

        started = self._init(ray)
        try:
            by_key = {it.key: it for it in items}
            pool = ActorPool(self._pool(ray, len(items)))
            results = pool.map_unordered(lambda a, it: a.run.remote(it), items)
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
                on_done(by_key[key], result)
                if bar is not None:
                    bar.update(by_key[key].units)
        finally:
            if started:
                ray.shutdown()
