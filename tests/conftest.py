"""Test setup. TRITON_INTERPRET must be set before anything imports triton: kernels run on CPU.

Nothing is written to the user's home: Triton's cache and Ray's files and token go to a private
temporary folder (removed at exit), as the artifact cache does (issue 18)."""
import atexit
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

_PRIVATE = tempfile.mkdtemp(prefix="srgan-tests-", dir="/tmp")   # short: Ray's socket paths
atexit.register(shutil.rmtree, _PRIVATE, True)
os.environ.setdefault("TRITON_HOME", _PRIVATE)              # else ~/.triton/cache
os.environ.setdefault("RAY_TMPDIR", _PRIVATE)               # else /tmp/ray
if "RAY_AUTH_TOKEN" not in os.environ and "RAY_AUTH_TOKEN_PATH" not in os.environ:
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)    # else Ray writes ~/.ray/auth_token

import pytest  # noqa: E402

from srgan_fast.engines.base import Engine as _Engine  # noqa: E402
from srgan_fast.eval.datasets import default_root  # noqa: E402
from srgan_fast.model import SCALE  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = default_root()  # $SRGAN_FAST_DATA, else ../shared/data/sr beside the repository
REAL_CACHE = Path.home() / ".cache" / "srgan_fast"

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.fixture(scope="session", autouse=True)
def private_artifact_cache(tmp_path_factory):
    """Every test builds into a temporary cache, never the user's ~/.cache/srgan_fast (issue 13):
    $SRGAN_FAST_CACHE is the default cache of every build, engine open and subprocess."""
    with pytest.MonkeyPatch.context() as mp:
        cache = tmp_path_factory.mktemp("srgan_fast_cache")
        mp.setenv("SRGAN_FAST_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="session")
def shared_data():
    """The shared SR datasets (Set5, Set14, T91, BSD200), or skip when this checkout has none."""
    if not (SHARED / "Set5").is_dir():
        pytest.skip(f"shared datasets not found at {SHARED}")
    return SHARED


def make_tiny_generator(seed: int = 0, per_channel_prelu: bool = False):
    """A 2-block generator with non-trivial BN statistics, so folding and tiling are really tested;
    optionally a per-channel head PReLU (public checkpoints have both kinds)."""
    from srgan_fast.model import Generator

    torch.manual_seed(seed)
    g = Generator(num_blocks=2)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
        if per_channel_prelu:
            g.head_prelu.weight = torch.nn.Parameter(torch.rand(64) * 0.3)
    return g.eval()


@pytest.fixture
def tiny_generator():
    return make_tiny_generator()


def tiny_weights(tmp_path_factory):
    """The tiny generator's weights and a cache folder shared by the engine and build tests, so
    the session exports its ONNX graph once (same weights, same cache key)."""
    from srgan_fast.checkpoints import save_generator

    root = tmp_path_factory.getbasetemp() / "srgan_fast_shared"
    root.mkdir(exist_ok=True)
    weights = root / "tiny.safetensors"
    if not weights.exists():
        save_generator(make_tiny_generator(seed=1), weights, dtype=torch.float32)
    return weights, root / "cache"


@pytest.fixture(scope="module")
def one_torch_thread():
    """For tests doing tiny tensor work between runtime calls: on a shared CPU, two OpenMP threads
    spin on each other far longer than the work takes (measured 25x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def image_folder(folder: Path, count: int, size: tuple[int, int], seed: int) -> Path:
    """A folder of ``count`` deterministic synthetic PNG images of ``size`` (height, width)."""
    from srgan_fast.eval.datasets import synthetic_images
    from srgan_fast.image.read import Image, write_image

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(synthetic_images(count, size, seed=seed)):
        write_image(folder / f"{i}.png", Image(rgb=img[0]))
    return folder


@pytest.fixture(scope="session")
def serve_port():
    """One local Ray instance and Serve HTTP proxy for the service tests (tests/serve, whose
    folder is on sys.path when they run); each test module runs its own app on it."""
    import serve_helpers

    yield from serve_helpers.ray_serve_session()


def has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


class NearestEngine(_Engine):
    """Stands in for the network where pixel values must be checked exactly: 4x nearest neighbour."""

    name, radius = "nearest", 2

    def _run(self, lr):
        return lr.repeat_interleave(SCALE, 2).repeat_interleave(SCALE, 3)


sys.path.insert(0, str(REPO))


def as_started_from_a_terminal():
    """In the child: the signal dispositions of a job started in a terminal, whatever this test
    run inherited (a shell's background job starts with SIGINT ignored, nohup with SIGHUP)."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


_SLOW_JOB = """
import sys, time
sys.path.insert(0, {tests!r})
from conftest import make_tiny_generator
from srgan_fast import {module}
from srgan_fast.engines.torch_engine import TorchEngine
import srgan_fast.engines as engines

class Slow(TorchEngine):
    def _run(self, lr):
        print("engine", flush=True)
        time.sleep(0.3)
        return super()._run(lr)

engines.open_engine = lambda *a, **k: Slow(make_tiny_generator(), device="cpu")
sys.exit({module}.main({argv!r}))
"""


def slow_job_script(module: str, argv) -> str:
    """``python -c`` text running ``srgan_fast.<module>.main(argv)`` on the tiny generator, each
    engine call printing "engine" then taking 0.3 s: a job a test can signal mid-way."""
    return _SLOW_JOB.format(tests=str(REPO / "tests"), module=module, argv=[str(a) for a in argv])
