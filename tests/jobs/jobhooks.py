"""Test-only hooks that make interruption tests deterministic (no sleeps, no race with the
machine's speed): a job run by ``python -c SCRIPT`` whose engine blocks at a known point.

Read only here, from the environment the test gives the job:

- ``SRGAN_TEST_BLOCK_SEGMENT=K``, ``SRGAN_TEST_BARRIER=FILE``: the first engine call for segment K
  (in whichever process runs it) creates FILE (holding its pid) and blocks; exactly one engine
  call blocks, once. It returns when its process gets SIGINT or SIGTERM (the job then stops as
  on Ctrl-C) or when ``SRGAN_TEST_RELEASE=FILE`` appears; SIGKILL ends it where it is.
- ``SRGAN_TEST_BLOCK_JOIN=FILE``: the join writes the whole output under its temporary name, then
  creates FILE and waits for SIGKILL (never publishing the output).
- ``SRGAN_TEST_OWNER=PID`` (set by ``env()``): the test process. A blocked job whose test process
  is gone (a failed or killed test run) exits instead of blocking forever as an orphan.

``install()`` puts the blocking engine in this process and, through ``HookSpec``, in every
worker process: ``env()`` puts this folder on PYTHONPATH, which local workers and the processes
of a local Ray instance inherit, so they unpickle ``HookSpec`` by reference.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from srgan_fast.engines.torch_engine import TorchEngine
from srgan_fast.jobs.engine_spec import EngineSpec

# Set by the signal handler: a plain flag, because a handler that takes a lock (Event.set) can
# deadlock when it interrupts the main thread while that thread holds the same lock.
_SIGNALLED = [False]
_RUNNING: list = []          # the segment this process is encoding (set by the part's hook)


def _exit_if_orphaned() -> None:
    """End this process when the test that started the job is gone (nobody will signal it)."""
    owner = os.environ.get("SRGAN_TEST_OWNER")
    if not owner:
        return
    try:
        os.kill(int(owner), 0)
    except ProcessLookupError:
        os._exit(3)
    except PermissionError:
        pass


def _publish(barrier: str, text: str) -> bool:
    """Create ``barrier`` holding ``text``, whole or not at all: the test polls for the name and
    reads it at once, so the name must never exist empty. False if it exists already."""
    tmp = f"{barrier}.{os.getpid()}.tmp"
    Path(tmp).write_text(text)
    try:
        os.link(tmp, barrier)           # atomic and exclusive, unlike open + write
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def _maybe_block() -> None:
    at, barrier = os.environ.get("SRGAN_TEST_BLOCK_SEGMENT"), os.environ.get("SRGAN_TEST_BARRIER")
    if not at or not barrier or _RUNNING != [int(at)]:
        return
    if not _publish(barrier, str(os.getpid())):
        return                          # another engine blocked already
    release = os.environ.get("SRGAN_TEST_RELEASE")
    while not _SIGNALLED[0]:
        time.sleep(0.01)
        if release and os.path.exists(release):
            return
        _exit_if_orphaned()


def _chain_signals() -> None:
    """SIGINT/SIGTERM also release a blocked engine, then do what they did before."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        before = signal.getsignal(sig)
        if before in (signal.SIG_IGN, None) or getattr(before, "_chained", False):
            continue

        def handler(signum, frame, before=before):
            _SIGNALLED[0] = True
            if callable(before):
                before(signum, frame)
            else:                       # SIG_DFL
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
        handler._chained = True
        signal.signal(sig, handler)


class BarrierEngine(TorchEngine):
    def _run(self, lr):
        _maybe_block()
        return super()._run(lr)


def _hook_parts() -> None:
    """In this process, a part records which segment it encodes while it runs."""
    from srgan_fast.jobs.parts import PartTask

    real = PartTask.run
    if getattr(real, "_hooked", False):
        return

    def run(self, engine, bar=None):
        _RUNNING[:] = [self.segment.index]
        try:
            return real(self, engine, bar)
        finally:
            _RUNNING.clear()
    run._hooked = True
    PartTask.run = run


def open_barrier_engine(weights, threads=None, device=None, precision="fp32"):
    import torch

    from srgan_fast.checkpoints import load_generator

    if threads:
        torch.set_num_threads(threads)
    _chain_signals()
    _hook_parts()
    # The precision the job asked for (auto included), so hooked runs match unhooked ones.
    return BarrierEngine(load_generator(weights), precision=precision, device=device or "cpu")


@dataclass(frozen=True)
class HookSpec(EngineSpec):
    def open(self):
        return open_barrier_engine(self.weights, self.threads, precision=self.precision)


def _blocking_join(real):
    def join(src, parts, tmp, dst, opts, log):
        result = real(src, parts, tmp, dst, opts, log)
        _publish(os.environ["SRGAN_TEST_BLOCK_JOIN"], str(tmp))
        while True:                     # until SIGKILL: the output is never published
            time.sleep(0.05)
            _exit_if_orphaned()
        return result
    return join


def install() -> None:
    import srgan_fast.engines as engines
    from srgan_fast.jobs import video_job

    engines.open_engine = lambda *a, **k: open_barrier_engine(
        k["weights"], device=k.get("device"), precision=a[1] if len(a) > 1 else k.get("precision", "fp32"))
    real_from_args = EngineSpec.from_args.__func__
    EngineSpec.from_args = classmethod(
        lambda cls, args: HookSpec(**vars(real_from_args(cls, args))))
    if os.environ.get("SRGAN_TEST_BLOCK_JOIN"):
        video_job.join = _blocking_join(video_job.join)


SCRIPT = """
import sys
import jobhooks
jobhooks.install()
from srgan_fast import video
sys.exit(video.main({argv!r}))
"""


def script(argv) -> str:
    return SCRIPT.format(argv=[str(a) for a in argv])


def env(**hooks) -> dict:
    """The job's environment: this folder importable everywhere, and the hooks asked for."""
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent),
                                        *filter(None, [out.get("PYTHONPATH")])])
    out.update({f"SRGAN_TEST_{k.upper()}": str(v) for k, v in hooks.items()})
    out["SRGAN_TEST_OWNER"] = str(os.getpid())
    return out
