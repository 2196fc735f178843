"""Helpers of the service tests: Ray and Serve for the session, run an app, the test recipe.

No conftest.py here: a second module named ``conftest`` would shadow tests/conftest.py for the
modules that import from it. The session fixture ``serve_port`` is in tests/conftest.py and
calls ``ray_serve_session`` below.
"""
import io
import os
import socket
from contextlib import contextmanager

import pytest

for _module in ("ray.serve", "fastapi", "python_multipart", "requests"):
    pytest.importorskip(_module, reason=f"the service tests need the serve extra ({_module})")

import fakes  # noqa: E402  (engines opened inside the replicas)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_serve_session():
    """Ray (local, loopback only, 2 CPUs) and Serve's proxy on 127.0.0.1 for all service tests;
    yields the port, then shuts both down and restores what start_ray changed."""
    import ray
    from ray import cloudpickle, serve
    from ray._private import ray_constants

    from srgan_fast.serve.ray_local import start_ray

    env = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    cluster = ray_constants.ENABLE_RAY_CLUSTER
    cloudpickle.register_pickle_by_value(fakes)  # the replicas cannot import tests/serve
    started = start_ray(num_cpus=2, object_store_bytes=256 * 2**20)
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"log_level": "WARNING"})
        yield port
    finally:
        serve.shutdown()
        if started:
            ray.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = cluster
        if env is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = env


@contextmanager
def running_app(port: int, name: str, recipe, limits, replicas: int = 1):
    """Run the service as app ``name`` at http://127.0.0.1:port/name/; yields that base URL."""
    from ray import serve

    from srgan_fast.serve.app import build_app

    serve.run(build_app(recipe, limits, replicas, {"num_cpus": 1}), name=name, route_prefix=f"/{name}")
    try:
        yield f"http://127.0.0.1:{port}/{name}/"
    finally:
        serve.delete(name)


def make_recipe(models=("nearest", "dark"), default="nearest", **kw):
    from srgan_fast.serve.limits import EngineRecipe

    return EngineRecipe(backend="test", precision="fp32", models=models, default_model=default,
                        opener=fakes.opener, **kw)



def png_bytes(arr) -> bytes:
    """An HW[C] uint8 array as PNG bytes (Pillow)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def noise(h: int, w: int, channels: int = 3, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels > 1 else (h, w)
    return rng.integers(0, 256, shape, dtype=np.uint8)
