"""pytest-benchmark view of the suite: one test per backend x precision x size.

    pytest bench/ --benchmark-only                      # this machine's suite (GPU if CUDA)
    pytest bench/ --benchmark-only --benchmark-json out.json --benchmark-columns median,ops,rounds

Tests are grouped by input size, so pytest-benchmark's table compares every backend at one size.
Environment: SRGAN_BENCH_DEVICE (cpu/cuda), SRGAN_BENCH_SIZES (e.g. 1x128x128,1x270x480),
SRGAN_BENCH_CASES (globs of case ids), SRGAN_BENCH_WEIGHTS (default: shipped weights, else
random), SRGAN_BENCH_ROUNDS. All cases run in this one process, so memory is not measured here:
``python -m bench`` measures it per case in a fresh process, plus % of peak, quality and the
pipelines. A case that cannot run here is skipped with its reason.
"""
from __future__ import annotations

import os

import pytest
import torch

from bench.backends import SkipCase, cases_for, open_case, parse_sizes, select, sizes_for
from bench.runner import lr_batch

DEVICE = os.environ.get("SRGAN_BENCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
CASES = select(cases_for(DEVICE), os.environ.get("SRGAN_BENCH_CASES"))
SIZES = parse_sizes(os.environ["SRGAN_BENCH_SIZES"]) if os.environ.get("SRGAN_BENCH_SIZES") \
    else sizes_for(DEVICE)
ROUNDS = int(os.environ.get("SRGAN_BENCH_ROUNDS", "20" if DEVICE == "cuda" else "5"))
# Ordered case-major so each engine is opened once and closed before the next one.
PARAMS = [(c, s) for c in CASES for s in SIZES]


def _size_id(size):
    return "x".join(map(str, size))


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    from srgan_fast.checkpoints import PACKAGE_WEIGHTS, save_generator
    from srgan_fast.model import Generator

    if os.environ.get("SRGAN_BENCH_WEIGHTS"):
        return os.environ["SRGAN_BENCH_WEIGHTS"]
    if PACKAGE_WEIGHTS.is_file():
        return str(PACKAGE_WEIGHTS)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "random_generator.safetensors"
    save_generator(Generator().eval(), path, dtype=torch.float32)
    return str(path)


class _OneEngine:
    """Keeps only the engine of the current case open."""

    def __init__(self, weights):
        self.weights, self.case, self.engine, self.reason = weights, None, None, None

    def get(self, case):
        if case is not self.case:
            self.close()
            self.case = case
            try:
                self.engine, self.reason = open_case(case, self.weights, DEVICE, SIZES), None
            except SkipCase as e:
                self.engine, self.reason = None, str(e)
        if self.engine is None:
            pytest.skip(self.reason)
        return self.engine

    def close(self):
        if self.engine is not None:
            self.engine.close()
        self.engine = None
        if DEVICE == "cuda":
            torch.cuda.empty_cache()


@pytest.fixture(scope="module")
def engines(weights):
    holder = _OneEngine(weights)
    yield holder
    holder.close()


@pytest.mark.parametrize("case,size", PARAMS, ids=[f"{c.id}-{_size_id(s)}" for c, s in PARAMS])
def test_engine(benchmark, engines, case, size):
    from srgan_fast.model import MACS_PER_LR_PIXEL

    engine = engines.get(case)
    n, h, w = size
    if not engine.shapes.accepts(n, h, w):
        pytest.skip(f"outside the engine's shape range {engine.shapes}")
    benchmark.group = f"batch {n}, {h}x{w} -> {4 * h}x{4 * w} ({DEVICE})"
    x = lr_batch(n, h, w).to(engine.torch_device)
    cuda = engine.torch_device.type == "cuda"

    def call():
        out = engine(x)
        if cuda:
            torch.cuda.synchronize()
        return out

    out = benchmark.pedantic(call, rounds=ROUNDS, warmup_rounds=2, iterations=1)
    assert out.shape == (n, 3, 4 * h, 4 * w)
    assert torch.isfinite(out).all()
    benchmark.extra_info.update(case=case.id, precision=engine.precision, device=engine.device,
                                copies_included="no (input already on the engine's device)")
    if benchmark.stats is not None:
        median = benchmark.stats.stats.median
        benchmark.extra_info["frames_per_s"] = n / median
        benchmark.extra_info["tflops"] = 2 * MACS_PER_LR_PIXEL * n * h * w / median / 1e12
