"""What a result was measured on: device, driver/CUDA, library versions, commit, date, load.

Every results file carries this stamp, so a number can always be traced to the machine, the
code and the libraries that produced it.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import subprocess
import time
from pathlib import Path

from srgan_fast.doctor.versions import installed_versions, nvidia_smi

REPO = Path(__file__).resolve().parents[1]

# Distribution names whose versions matter to the numbers (first installed name wins per entry).
LIBRARIES = {
    "torch": ("torch",),
    "triton": ("triton", "pytorch-triton"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"),
    "openvino": ("openvino",),
    "nncf": ("nncf",),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_cu12", "tensorrt_cu13"),
    "onnx": ("onnx",),
    "numpy": ("numpy",),
    "pytest-benchmark": ("pytest-benchmark",),
}


def library_versions() -> dict:
    return installed_versions(LIBRARIES)


def git_commit() -> dict:
    def git(*args):
        r = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 else None

    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        sha, dirty = None, False
    return {"commit": sha, "dirty": dirty}


_nvidia_smi = nvidia_smi  # driver and clocks: one reader, shared with the doctor


def cpu_info() -> dict:
    from srgan_fast.hardware import cpu_flags, cpu_name

    flags = cpu_flags()
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                       "amx_bf16", "amx_int8", "amx_fp16") if f in flags]
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "usable_cpus": affinity, "isa": isa}


def stamp(device: str, threads: int | None = None) -> dict:
    """The environment record written at the top of every results file."""
    import torch

    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "suite_device": device,
        **cpu_info(),
        "torch_threads": threads or torch.get_num_threads(),
        "libraries": library_versions(),
        **git_commit(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update({
            "device_name": torch.cuda.get_device_name(0),
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "gpu_sms": props.multi_processor_count,
            "compute_capability": f"{props.major}.{props.minor}",
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            **_nvidia_smi(),
        })
    else:
        info["device_name"] = info["cpu"]
    return info


def slug(text: str) -> str:
    """A folder-safe name: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    text = re.sub(r"\(r\)|\(tm\)|processor|cpu @.*", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:60] or "device"


def device_slug(env: dict) -> str:
    if env["suite_device"] == "cuda":
        return "cuda-" + slug(env["device_name"])
    return f"cpu-{slug(env['cpu'])}-{env['torch_threads']}t"


def cpu_snapshot() -> dict | None:
    """Machine-wide busy CPU seconds (/proc/stat) and this process tree's own CPU seconds."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = v[0] + v[1] + v[2] + sum(v[5:8])  # user nice system irq softirq steal
    t = os.times()
    return {"busy_s": busy / os.sysconf("SC_CLK_TCK"), "own_s": t.user + t.system +
            t.children_user + t.children_system, "wall": time.monotonic()}


def other_load(start: dict | None, end: dict | None, cpus: int) -> float | None:
    """Share of the machine's CPUs (0..1) that processes other than this run used in between.

    Children count once they have exited, which every case process has by the end."""
    if not start or not end or end["wall"] <= start["wall"]:
        return None
    other = (end["busy_s"] - start["busy_s"]) - (end["own_s"] - start["own_s"])
    return max(0.0, other / ((end["wall"] - start["wall"]) * max(1, cpus)))
