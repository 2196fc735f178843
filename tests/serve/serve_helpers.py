"""Helpers of the service tests: run an app, the test recipe, free ports, HTTP shortcuts."""
import io
import socket
from contextlib import contextmanager

import fakes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def make_recipe(models=("nearest", "dark"), default="nearest"):
    from srgan_fast.serve.limits import EngineRecipe

    return EngineRecipe(backend="test", precision="fp32", models=models, default_model=default,
                        opener=fakes.opener)



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
