"""What the doctor ran on: library versions (without importing the libraries), the NVIDIA driver,
CUDA and cuDNN, and the device. The bench's stamp (``bench/env.py``) reads versions through here.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess

# Distribution names per library (the first installed name wins): versions are read from the
# package metadata, so nothing is imported (importing triton on a CPU would fix its mode).
LIBRARIES = {
    "torch": ("torch",),
    "triton": ("triton", "pytorch-triton"),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_cu12", "tensorrt_cu13"),
    "pycuda": ("pycuda",),
    "openvino": ("openvino",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"),
    "onnx": ("onnx",),
    "onnxscript": ("onnxscript",),
    "nncf": ("nncf",),
    "numpy": ("numpy",),
}


def installed_versions(libraries: dict = LIBRARIES) -> dict:
    """{library: version or None} for each entry of ``libraries``."""
    out = {}
    for key, dists in libraries.items():
        out[key] = None
        for dist in dists:
            try:
                out[key] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def nvidia_smi() -> dict:
    """Driver version and GPU clocks/power limit from nvidia-smi, when it is there."""
    fields = "driver_version,clocks.max.sm,power.limit"
    try:
        r = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return {}
    if r.returncode != 0 or not r.stdout.strip():
        return {}
    vals = [v.strip() for v in r.stdout.strip().splitlines()[0].split(",")]
    return dict(zip(("driver", "max_sm_clock_mhz", "power_limit_w"), vals))


def versions(device: str) -> dict:
    """Python, srgan_fast, every library, and on a GPU the driver, CUDA and cuDNN."""
    import torch

    from srgan_fast import __version__

    out = {"python": platform.python_version(), "srgan_fast": __version__, **installed_versions(),
           "cuda": torch.version.cuda, "cudnn": None, "driver": None}
    if device.startswith("cuda"):
        out["cudnn"] = torch.backends.cudnn.version()
        out["driver"] = nvidia_smi().get("driver")
    return out


def device_info(device: str) -> dict:
    """The device the rows ran on: its name, the artifact identity, and what bounds its speed."""
    import torch

    from srgan_fast.hardware import cpu_features, device_identity

    name, ident = device_identity(device)
    info = {"kind": "cuda" if device.startswith("cuda") else "cpu", "torch_device": device, "name": name,
            "id": ident, "threads": torch.get_num_threads(), "cpu_isa": cpu_features(),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "memory_gib": None, "compute_capability": None}
    if info["kind"] == "cuda":
        props = torch.cuda.get_device_properties(torch.device(device))
        info["memory_gib"] = round(props.total_memory / 2 ** 30, 1)
        info["compute_capability"] = f"{props.major}.{props.minor}"
    else:
        try:
            info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)
        except (ValueError, OSError, AttributeError):
            pass
    return info
