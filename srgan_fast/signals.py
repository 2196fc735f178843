"""SIGTERM and SIGHUP end a command the way Ctrl-C does (``errors.cli`` and each worker process
hold ``terminate_as_interrupt``): a job's stages stop, temporary files and locks are removed,
finished parts are kept, training saves its state, and the CLI prints one line and exits 130.
A signal the command was started with ignored stays ignored: ``nohup`` ignores SIGHUP so that a
long job outlives the terminal it was started from."""
from __future__ import annotations

import contextlib
import signal
import threading


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process gets SIGTERM or SIGHUP."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


def _raise(signum, _frame):
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_as_interrupt():
    """Within the block, SIGTERM/SIGHUP raise ``Terminated`` (a KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = [s for s in ("SIGTERM", "SIGHUP")
             if hasattr(signal, s) and signal.getsignal(getattr(signal, s)) is not signal.SIG_IGN]
    before = {s: signal.signal(getattr(signal, s), _raise) for s in names}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(getattr(signal, s), handler)
