"""Run a job's items (video parts, images) in this process, on local workers, or on Ray.

Every runner takes the same items (objects with ``key``, ``units`` and ``run(engine, bar)``)
and calls ``on_done(item, result)`` in this process as each finishes, so the job's state (a
manifest, a count) is kept in one place whatever runs the items.
"""
from __future__ import annotations


class InlineRunner:
    """Items one after another on one engine, opened only if there is work to do."""

    def __init__(self, open_engine):
        self.open_engine = open_engine

    def run(self, items, on_done, bar=None) -> None:
        if not items:
            return
        engine = self.open_engine()
        try:
            for item in items:
                on_done(item, item.run(engine, bar))
        finally:
            engine.close()


def make_runner(args, open_engine, spec=None):
    """The runner ``args`` ask for: --ray, --workers N (N > 1), else this process (on the one
    device --devices names, if it names one)."""
    from .engine_spec import EngineSpec, worker_slots
    from .options import check_job_args, device_list

    check_job_args(args)
    workers = getattr(args, "workers", 1) or 1
    devices = getattr(args, "devices", None)
    if devices and workers == 1:            # --devices cuda:0,cuda:1: one worker per device
        workers = len(device_list(devices))
    ray_address = getattr(args, "ray", None)
    chosen = ""
    if ray_address or workers > 1:
        spec, chosen = (spec or EngineSpec.from_args(args)).pin()   # auto: one choice for every worker
        spec.prepare()
    if ray_address:
        from .options import DEFAULT_RAY_TIMEOUT
        from .ray_runner import RayRunner
        runner = RayRunner(spec or EngineSpec.from_args(args), ray_address,
                           None if workers == 1 else workers,
                           timeout=getattr(args, "ray_timeout", None) or DEFAULT_RAY_TIMEOUT)
        runner.announce = chosen     # said once connected: a cluster that is not there stays one line
        return runner
    if workers > 1:
        from .pool import PoolRunner
        return _saying(PoolRunner(spec or EngineSpec.from_args(args), worker_slots(workers, devices)), chosen)
    if devices:
        spec = (spec or EngineSpec.from_args(args)).on(device_list(devices)[0], None)
        return InlineRunner(lambda: _said(spec.open()))
    return InlineRunner(open_engine)


def _saying(runner, line: str):
    if line:
        from .engine_spec import say

        say(line)
    return runner


def _said(engine):
    """The engine line at the start of a run in this process (as ``upscale`` prints it)."""
    from .engine_spec import say

    say(f"engine: {engine.describe()}")
    return engine
