"""Engines for the service tests, opened inside the replicas (pickled by value: see conftest).

``nearest`` makes outputs exactly checkable; ``dark`` tells models apart; ``gated`` blocks each
engine call until the test opens a gate (a named Ray actor), so queue-full and timeout tests
never race the machine's speed; ``crash`` kills its replica process; ``broken`` raises (a bug).
"""
import os

import ray

from srgan_fast.engines.base import Engine
from srgan_fast.model import SCALE

GATE = "srgan_fast_test_gate"
NAMESPACE = "srgan_fast_tests"


class Nearest(Engine):
    name, radius = "nearest", 2

    def _run(self, lr):
        return lr.repeat_interleave(SCALE, 2).repeat_interleave(SCALE, 3)


class Dark(Nearest):
    def _run(self, lr):
        return super()._run(lr) * 0.5


class Gated(Nearest):
    def _run(self, lr):
        gate = ray.get_actor(GATE, namespace=NAMESPACE)
        ray.get(gate.wait.remote(lr.shape[0]))
        return super()._run(lr)


class Crash(Nearest):
    def _run(self, lr):
        os._exit(1)


class Broken(Nearest):
    """A bug in the engine: a Python exception, not bad input."""

    def _run(self, lr):
        raise ZeroDivisionError("a bug")


class Detail(Nearest):
    """Stands in for srgan at a --detail level: brightness 0.5 + 0.5 * level, so a test can tell
    from the pixels which level's engine answered."""

    def __init__(self, level: float):
        self.level = level

    def _run(self, lr):
        return super()._run(lr) * (0.5 + 0.5 * self.level)


ENGINES = {"nearest": Nearest, "dark": Dark, "gated": Gated, "crash": Crash, "broken": Broken}


def opener(variant):
    model, _, level = variant.partition("@")
    return Detail(float(level)) if model == "srgan" else ENGINES[model]()


@ray.remote(num_cpus=0)
class Gate:
    """Engine calls wait here while the gate is closed; counts the calls that arrived."""

    def __init__(self):
        import asyncio

        self.open_event = asyncio.Event()
        self.open_event.set()
        self.arrived = 0

    async def wait(self, n):
        self.arrived += 1
        await self.open_event.wait()

    def close(self):
        self.open_event.clear()

    def open(self):
        self.open_event.set()

    def count(self):
        return self.arrived
