"""Timing and memory measurement of one engine at one input size (the probes themselves live in
``srgan_fast.doctor.measure``, shared with the doctor).

Timing: the first call is timed on its own (it includes lazy initialisation, compilation and
autotuning), then ``warmup - 1`` more untimed calls, then at least ``repeats`` timed calls
and at least ``min_time`` seconds (capped by ``max_time``). Each timed call is one
synchronous batch (latency; no overlap between calls).
- CPU: ``time.perf_counter`` around the call.
- CUDA: CUDA events on the current stream around the call, after a device synchronize, in two
  modes: device-only (input already on the GPU, output left there) and with host<->device
  copies (pinned host input in, ``.cpu()`` of the output, both inside the timed region).

Memory probes never disturb the timed calls:
- CPU: the process's resident-set high-water mark (VmHWM). Each case runs in its own process,
  and VmHWM is reset (``/proc/self/clear_refs`` = 5) after the warm-up, so the figure is this
  case at this size in steady state, read after the timed calls (the kernel keeps the mark, so
  nothing disturbs the timing); "run" is the rise above the RSS before the timed calls
  (activations and scratch). Without clear_refs, one extra call with a 1 ms psutil sampler.
- CUDA (one extra call after timing): ``torch.cuda.max_memory_allocated`` /
  ``max_memory_reserved`` (torch's allocator) and the device-wide used memory
  (``cudaMemGetInfo``) sampled every 1 ms by a thread, minus the level before the engine was opened -- the only figure that also sees memory that TensorRT or
  ONNX Runtime allocate outside torch.
"""
from __future__ import annotations

import os

import torch

from srgan_fast.doctor.measure import (  # noqa: F401 - the shared probes, re-exported
    MIB, Settings, cuda_memory_during, cuda_used_bytes, percentile, rss_during, summarize, time_calls)
from srgan_fast.doctor.measure import reset_hwm as _reset_hwm, status_kib as _status_kib


# --- one size ---------------------------------------------------------------------------------

def lr_batch(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g)


def measure_size(engine, n: int, h: int, w: int, settings: Settings, base_used: int = 0) -> dict:
    """Timing (and on CUDA the with-copies timing) plus memory of ``engine`` at n x 3 x h x w."""
    dev = engine.torch_device
    host = lr_batch(n, h, w)
    out: dict = {"batch": n, "h": h, "w": w}
    if dev.type == "cuda":
        x = host.to(dev)
        first, times = time_calls(lambda: engine(x), dev, settings)
        out.update(first_call_ms=first * 1e3, **summarize(times), timer="cuda events")
        pinned = host.pin_memory()
        _, copy_times = time_calls(lambda: engine(pinned).cpu(), dev, settings)
        copy = summarize(copy_times)
        out["with_copies"] = {k: copy[k] for k in ("median_ms", "p99_ms", "n")}
        out["copies_included"] = "both: median_ms device-only, with_copies adds H2D+D2H"
        out.update(cuda_memory_during(lambda: engine(x), dev, base_used))
    else:
        # RSS high-water over the timed calls, read for free from the kernel: the mark is reset
        # after the warm-up (steady state), so no extra call is needed.
        mark = {}

        def reset():
            mark["before"] = _status_kib("VmRSS")
            mark["ok"] = mark["before"] is not None and _reset_hwm()

        first, times = time_calls(lambda: engine(host), dev, settings, before_timed=reset)
        out.update(first_call_ms=first * 1e3, **summarize(times), timer="perf_counter")
        out["copies_included"] = "n/a (host memory)"
        peak = _status_kib("VmHWM") if mark.get("ok") else None
        if peak is not None:
            out.update(rss_peak_mib=peak / 1024, rss_run_mib=(peak - mark["before"]) / 1024,
                       mem_method="VmHWM over the timed calls (reset by clear_refs after warm-up)")
        else:
            out.update(rss_during(lambda: engine(host)))
    return out


def quality_input() -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """(LR 1x3x128x128, HR or None, description): Set5 'baby' when the shared data is there,
    else a generated picture (gradients, edges, texture) that exercises the same ranges."""
    from srgan_fast.eval.datasets import default_root

    root = default_root()
    lr_path, hr_path = root / "Set5_LRx4" / "baby.png", root / "Set5" / "baby.png"
    if lr_path.is_file():
        from srgan_fast.image.read import read_image

        lr = read_image(lr_path).rgb[:, :128, :128]
        hr = read_image(hr_path).rgb[:, :512, :512] if hr_path.is_file() else None
        return lr[None].contiguous(), (hr[None].contiguous() if hr is not None else None), \
            "Set5/baby (LR x4, 128x128)"
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 128), torch.linspace(0, 1, 128), indexing="ij")
    g = torch.Generator().manual_seed(1)
    rgb = torch.stack([xx, yy, 0.5 + 0.4 * torch.sin(12 * xx + 9 * yy)])
    rgb[:, 40:88, 40:88] = 0.9 - rgb[:, 40:88, 40:88] * 0.5  # a square with hard edges
    rgb = (rgb + 0.05 * torch.rand(3, 128, 128, generator=g)).clamp(0, 1)
    return rgb[None].contiguous(), None, "generated 128x128 pattern (no shared data)"


def thread_note() -> dict:
    return {"torch_threads": torch.get_num_threads(), "pid": os.getpid()}
