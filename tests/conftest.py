"""Test setup. TRITON_INTERPRET must be set before anything imports triton: kernels run on CPU."""
import os
import sys
from pathlib import Path

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "sr"

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.fixture(scope="session")
def shared_data():
    """The shared SR datasets (Set5, Set14, T91, BSD200), or skip when this checkout has none."""
    if not (SHARED / "Set5").is_dir():
        pytest.skip(f"shared datasets not found at {SHARED}")
    return SHARED


@pytest.fixture
def tiny_generator():
    """A 2-block generator with non-trivial BN statistics, so folding and tiling are really tested."""
    from srgan_fast.model import Generator

    torch.manual_seed(0)
    g = Generator(num_blocks=2)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return g.eval()


def has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


sys.path.insert(0, str(REPO))
