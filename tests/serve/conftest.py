"""One local Ray instance (2 CPUs, loopback) and one Serve HTTP proxy for all service tests; each
test module runs its own app under its own route prefix and deletes it at the end."""
import os

import pytest

for _module in ("ray.serve", "fastapi", "python_multipart", "requests"):
    pytest.importorskip(_module, reason=f"the service tests need the serve extra ({_module})")

import fakes  # noqa: E402  (tests/serve/fakes.py: engines opened inside the replicas)
from serve_helpers import free_port  # noqa: E402


@pytest.fixture(scope="session")
def serve_port():
    """Ray (local, loopback only) and Serve's proxy on 127.0.0.1; shut down after the session."""
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
