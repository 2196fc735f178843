"""Hand-offs between pipeline threads that give up when the job stops.

The image folder pipeline and the video pipeline both run reader, engine and writer threads
joined by bounded queues (bounded, so memory stays flat). A plain ``Queue.put`` on a full queue
would block forever once the consumer has died or the user pressed Ctrl-C; this one re-checks the
job's stop event between short waits.
"""
from __future__ import annotations

import queue
import threading


def put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Blocking put that gives up (False) when ``stop`` is set."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
