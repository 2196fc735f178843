"""The benchmark tests are heavy: they run only when asked for, never in a plain ``pytest``.

Run them with ``pytest bench/ --benchmark-only`` (or set SRGAN_BENCH=1).
"""
import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    if config.getoption("benchmark_only", default=False) or os.environ.get("SRGAN_BENCH") == "1":
        return
    skip = pytest.mark.skip(reason="benchmarks run only with: pytest bench/ --benchmark-only")
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)
