"""--memory-budget bounds the whole image job above the process baseline (tiles, output canvas,
encoding and writing), measured as peak RSS in a fresh subprocess at two image sizes.

The engine here does no arithmetic but makes resident exactly the memory it declares per LR
pixel, so this checks the job's own accounting in seconds; bench/memory_job.py measures the same
with the real engines (numbers in the README).
"""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))


@pytest.mark.slow
def test_job_memory_stays_within_the_budget():
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to reset and read the peak RSS")
    from memory_job import measure

    budget = 192
    jobs = [measure(size, budget, backend="hog")["job_mib"] for size in (160, 320)]
    for job in jobs:
        assert job <= budget, f"job used {job} MiB above baseline with --memory-budget {budget}: {jobs}"
    assert min(jobs) > budget / 3  # the tiles really filled the budget: the check has teeth
