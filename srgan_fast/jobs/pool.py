"""Local worker processes, each holding one engine, fed one item at a time from a queue.

The parent hands each idle worker its next item, so it always knows which item a worker holds:
a worker that dies (killed, out of memory) has that item put back for another worker and is
replaced. Workers ignore Ctrl-C; the parent stops them (SIGTERM, which they treat like Ctrl-C:
temporary files removed) and finished items stay done.
"""
from __future__ import annotations

import collections
import os
import pickle
import queue
import signal
import traceback

from ..errors import SrganError

MAX_ATTEMPTS = 3


class _Progress:
    """A progress bar stand-in inside a worker: sends increments to the parent's bar."""

    def __init__(self, results, wid):
        self.results, self.wid = results, wid

    def update(self, n=1):
        self.results.put(("progress", self.wid, n))


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM this worker when the job's process dies, SIGKILL included. An orphan would
    go on writing its part into the work folder after the lock is gone and the next run of the
    job has started."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:          # it died before prctl took effect
        raise KeyboardInterrupt


def worker_main(wid, spec, inbox, results, parent) -> None:
    """A worker process: open the engine once, then run items until told to stop."""
    from ..signals import terminate_as_interrupt

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with terminate_as_interrupt():
        try:
            _die_with_parent(parent)
        except KeyboardInterrupt:
            return
        try:
            engine = spec.open()
        except SrganError as e:
            results.put(("fatal", wid, str(e)))
            return
        except KeyboardInterrupt:
            return
        try:
            _serve(wid, engine, inbox, results, parent)
        except KeyboardInterrupt:
            pass
        finally:
            engine.close()


def _serve(wid, engine, inbox, results, parent) -> None:
    results.put(("ready", wid, None))
    while True:
        try:
            item = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:       # the parent is gone (e.g. SIGKILL): stop too
                return
            continue
        if item is None:
            return
        item = pickle.loads(item)
        try:
            results.put(("done", wid, (item.key, item.run(engine, _Progress(results, wid)))))
        except SrganError as e:
            results.put(("failed", wid, (item.key, str(e))))
        except Exception as e:  # noqa: BLE001 - a bug: report it with its traceback
            results.put(("failed", wid, (item.key, f"{e.__class__.__name__}: {e}\n"
                                                    f"{traceback.format_exc()}")))


class PoolRunner:
    def __init__(self, spec, slots):
        self.spec, self.slots = spec, slots

    def run(self, items, on_done, bar=None) -> None:
        if not items:
            return
        import multiprocessing as mp

        self.ctx = mp.get_context("spawn")    # fork would copy torch's thread pools and locks
        self.results = self.ctx.Queue()
        self.workers: dict = {}
        self.todo = collections.deque(items)
        self.by_key = {it.key: it for it in items}
        self.attempts: collections.Counter = collections.Counter()
        self.start_deaths = 0
        self.shown: collections.Counter = collections.Counter()   # bar units per held item
        try:
            for wid in range(min(len(self.slots), len(items))):
                self._start(wid)
            left = len(items)
            while left:
                self._assign()
                left -= self._handle(on_done, bar)
                self._reap(bar)
        finally:
            self._stop()

    def _start(self, wid) -> None:
        device, threads = self.slots[wid % len(self.slots)]
        inbox = self.ctx.Queue()
        p = self.ctx.Process(target=worker_main, name=f"srgan-worker-{wid}", daemon=True,
                             args=(wid, self.spec.on(device, threads), inbox, self.results,
                                   os.getpid()))
        p.start()
        self.workers[wid] = {"process": p, "inbox": inbox, "item": None, "ready": False}

    def _assign(self) -> None:
        for w in self.workers.values():
            if w["ready"] and w["item"] is None and self.todo:
                w["item"] = self.todo.popleft()
                # Pickled here, so an item that cannot travel fails now, not in a feeder thread.
                w["inbox"].put(pickle.dumps(w["item"]))

    def _handle(self, on_done, bar) -> int:
        """Handle one message from the workers; returns how many items finished."""
        try:
            kind, wid, payload = self.results.get(timeout=0.2)
        except queue.Empty:
            return 0
        w = self.workers.get(wid)
        if kind == "fatal":
            raise SrganError(payload)
        if w is None:
            return 0
        if kind == "ready":
            w["ready"] = True
        elif kind == "progress":
            self.shown[wid] += payload
            if bar is not None:
                bar.update(payload)
        elif kind == "failed":
            raise SrganError(payload)
        elif kind == "done":
            key, result = payload
            w["item"], self.shown[wid] = None, 0
            on_done(self.by_key[key], result)
            return 1
        return 0

    def _reap(self, bar) -> None:
        """Put back the item of a worker that died, and start another worker in its place."""
        for wid, w in list(self.workers.items()):
            if w["process"].is_alive():
                continue
            del self.workers[wid]
            item = w["item"]
            if not w["ready"]:
                self.start_deaths += 1      # killed while starting: start another, a few times
                if self.start_deaths >= MAX_ATTEMPTS:
                    raise SrganError(f"workers died {MAX_ATTEMPTS} times while opening their "
                                     f"engine (last exit code {w['process'].exitcode})")
            if item is not None:
                self.attempts[item.key] += 1
                if self.attempts[item.key] >= MAX_ATTEMPTS:
                    raise SrganError(f"item {item.key} killed its worker {MAX_ATTEMPTS} times "
                                     f"(exit code {w['process'].exitcode}); giving up")
                if bar is not None and self.shown[wid]:
                    bar.update(-self.shown[wid])      # its frames will be done again
                self.todo.appendleft(item)
            self.shown[wid] = 0
            if self.todo:
                self._start(wid)

    def _stop(self) -> None:
        for w in self.workers.values():
            if w["process"].is_alive():
                if w["item"] is None:
                    w["inbox"].put(None)
                else:
                    w["process"].terminate()     # SIGTERM: the worker cleans up like Ctrl-C
        for w in self.workers.values():
            w["process"].join(timeout=30)
            if w["process"].is_alive():
                w["process"].kill()
                w["process"].join()
