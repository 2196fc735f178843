"""Timing and memory probes of one engine call, shared by the doctor and the bench.

Timing (``time_calls``): the first call is timed on its own (it includes lazy initialisation,
compilation and autotuning), then ``warmup - 1`` more untimed calls, then at least ``repeats``
timed calls and at least ``min_time`` seconds (capped by ``max_time``). Each timed call is one
synchronous batch (latency; no overlap between calls). CPU: ``time.perf_counter`` around the
call; CUDA: CUDA events on the current stream around the call, after a device synchronize.

Memory probes never disturb the timed calls:
- CPU: the process's resident-set high-water mark (VmHWM), reset with ``/proc/self/clear_refs``
  (= 5) after the warm-up and read after the timed calls; without clear_refs, one extra call
  sampled by psutil every 1 ms (``rss_during``).
- CUDA: ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` (torch's allocator) and
  the device-wide used memory (``cudaMemGetInfo``) sampled every 1 ms by a thread, minus the
  level before the engine was opened: the only figure that also sees memory that TensorRT or
  ONNX Runtime allocate outside torch.
"""
from __future__ import annotations

import math
import threading
import time

import torch

MIB = 2 ** 20


def percentile(values, q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty sequence."""
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(seconds: list[float]) -> dict:
    ms = [s * 1e3 for s in seconds]
    return {"median_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "min_ms": min(ms),
            "mean_ms": sum(ms) / len(ms), "n": len(ms)}


class Settings:
    """How long to time each size. ``quick`` trades precision for a short run."""

    def __init__(self, warmup: int = 2, repeats: int = 10, min_time: float = 2.0,
                 max_time: float = 60.0):
        self.warmup, self.repeats, self.min_time, self.max_time = warmup, repeats, min_time, max_time

    @classmethod
    def quick(cls):
        return cls(warmup=1, repeats=3, min_time=0.0, max_time=15.0)

    def as_dict(self):
        return dict(warmup=self.warmup, repeats=self.repeats, min_time=self.min_time,
                    max_time=self.max_time)


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn, device: torch.device, settings: Settings, before_timed=None) -> tuple[float, list[float]]:
    """(first call seconds, [timed call seconds]) for ``fn()`` on ``device``.

    ``before_timed()``, if given, runs after the warm-up, just before the timed calls."""
    cuda = device.type == "cuda"
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    first = time.perf_counter() - t0
    for _ in range(max(0, settings.warmup - 1)):
        fn()
    _sync(device)
    if before_timed is not None:
        before_timed()
    times: list[float] = []
    if cuda:
        start_ev, end_ev = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - begin
        done_min = len(times) >= settings.repeats and elapsed >= settings.min_time
        over = elapsed >= settings.max_time and len(times) >= min(3, settings.repeats)
        if done_min or over:
            break
        if cuda:
            start_ev.record()
            fn()
            end_ev.record()
            end_ev.synchronize()
            times.append(start_ev.elapsed_time(end_ev) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return first, times


# --- memory probes ---------------------------------------------------------------------------

def status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Sampler:
    """Calls ``read()`` every ``period`` seconds in a thread and keeps the maximum."""

    def __init__(self, read, period: float = 1e-3):
        self.read, self.period, self.peak = read, period, read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.read())
            time.sleep(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())


def rss_during(fn) -> dict:
    """Peak RSS of this process while ``fn()`` runs, and its rise over the RSS before."""
    before = status_kib("VmRSS")
    if before is not None and reset_hwm():
        fn()
        peak = status_kib("VmHWM")
        method = "VmHWM after clear_refs"
    else:
        import psutil

        proc = psutil.Process()
        before = proc.memory_info().rss // 1024
        with _Sampler(lambda: proc.memory_info().rss // 1024) as s:
            fn()
        peak, method = s.peak, "psutil RSS sampled every 1 ms"
    return {"rss_peak_mib": peak / 1024, "rss_run_mib": (peak - before) / 1024, "mem_method": method}


def cuda_used_bytes(device: torch.device) -> int:
    free, total = torch.cuda.mem_get_info(device)
    return total - free


def cuda_memory_during(fn, device: torch.device, base_used: int) -> dict:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    with _Sampler(lambda: cuda_used_bytes(device)) as s:
        fn()
        torch.cuda.synchronize(device)
    return {"torch_alloc_peak_mib": torch.cuda.max_memory_allocated(device) / MIB,
            "torch_reserved_peak_mib": torch.cuda.max_memory_reserved(device) / MIB,
            "device_used_peak_mib": (s.peak - base_used) / MIB,
            "mem_method": "torch allocator peaks; cudaMemGetInfo sampled 1 ms minus level before open"}
