"""Speed and memory of one engine at the stated size: median latency, frames/s, TFLOP/s (as a
fraction of the device's measured peak, ``peak.py``, for the precision that runs: ``with_peak``),
and the peak memory of the timed calls (``measure.py``: process RSS on a CPU, torch and device
memory on a GPU).
"""
from __future__ import annotations

import torch

from srgan_fast.model import SCALE

from .measure import Settings, cuda_memory_during, cuda_used_bytes, reset_hwm, rss_during, status_kib, summarize, \
    time_calls


def settings_for(device: str, quick: bool, interpreter: bool = False) -> Settings:
    """Timing effort: a GPU call is milliseconds, so it gets many repeats; a CPU call is seconds;
    the Triton interpreter's is seconds for a 7x9 crop and says nothing about speed: 2 calls."""
    if interpreter:
        return Settings(warmup=1, repeats=2, min_time=0.0, max_time=0.0)
    if device.startswith("cuda"):
        return Settings(warmup=3, repeats=5, min_time=0.2, max_time=5.0) if quick else \
            Settings(warmup=5, repeats=20, min_time=1.0, max_time=15.0)
    return Settings(warmup=1, repeats=3, min_time=0.0, max_time=10.0) if quick else \
        Settings(warmup=1, repeats=5, min_time=1.0, max_time=30.0)


def device_baseline(device: str) -> int:
    """Device memory in use before an engine opens (the CUDA context and other processes)."""
    return cuda_used_bytes(torch.device(device)) if device.startswith("cuda") else 0


def speed_check(engine, x: torch.Tensor, settings: Settings, macs_per_lr_pixel: int,
                base_used: int = 0, device: str = "cpu") -> tuple[dict, dict]:
    """(speed, memory) of ``engine`` on the batch ``x``, moved to the engine's device first.
    Memory is measured on ``device``, the doctor's: ONNX Runtime's CUDA provider hands back host
    tensors, but what it allocates is on the GPU."""
    dev = engine.torch_device
    x = x.to(dev)
    n, _, h, w = x.shape
    memory: dict = {}
    if device.startswith("cuda"):
        first, times = time_calls(lambda: engine(x), dev, settings)
        m = cuda_memory_during(lambda: engine(x), torch.device(device), base_used)
        memory = {"kind": "cuda", "peak_mib": m["device_used_peak_mib"],
                  "torch_peak_mib": m["torch_alloc_peak_mib"], "delta_mib": None, "method": m["mem_method"]}
    else:
        mark = {}

        def reset():  # after the warm-up: the high-water mark then covers the timed calls only
            mark["before"] = status_kib("VmRSS")
            mark["ok"] = mark["before"] is not None and reset_hwm()

        first, times = time_calls(lambda: engine(x), dev, settings, before_timed=reset)
        peak = status_kib("VmHWM") if mark.get("ok") else None
        if peak is not None:
            memory = {"kind": "rss", "peak_mib": peak / 1024, "torch_peak_mib": None,
                      "delta_mib": (peak - mark["before"]) / 1024,
                      "method": "process VmHWM over the timed calls (reset after the warm-up); "
                                "delta: its rise over the RSS before them"}
        else:
            m = rss_during(lambda: engine(x))
            memory = {"kind": "rss", "peak_mib": m["rss_peak_mib"], "torch_peak_mib": None,
                      "delta_mib": m["rss_run_mib"], "method": m["mem_method"]}
    s = summarize(times)
    seconds = s["median_ms"] / 1e3
    tflops = 2 * macs_per_lr_pixel * n * h * w / seconds / 1e12 if seconds > 0 else None
    speed = {"status": "ok", "detail": None, "size": [n, h, w], "output": [SCALE * h, SCALE * w],
             "median_ms": s["median_ms"], "min_ms": s["min_ms"],
             "calls": s["n"], "first_call_ms": first * 1e3, "frames_per_s": n / seconds if seconds > 0 else None,
             "tflops": tflops, "peak_tflops": None, "fraction_of_peak": None,
             "timer": "cuda events" if dev.type == "cuda" else "perf_counter"}
    return speed, memory


SPEED_FIELDS = ("size", "output", "median_ms", "min_ms", "calls", "first_call_ms", "frames_per_s", "tflops",
                "peak_tflops", "fraction_of_peak", "timer")


def speed_skipped(why: str) -> dict:
    """A speed check that did not run: the same fields, empty, and why."""
    return {"status": "skip", "detail": why, **dict.fromkeys(SPEED_FIELDS)}


def with_peak(speed: dict | None, runs: str | None, peaks: dict) -> None:
    """Fill in the measured peak of the precision that ran, and the fraction of it reached."""
    if not speed or speed.get("tflops") is None:
        return
    peak = (peaks.get(runs) or {}).get("tflops")
    speed["peak_tflops"] = peak
    speed["fraction_of_peak"] = speed["tflops"] / peak if peak else None
