"""What the machine has: CPU features and names, CUDA devices, the device identity of artifacts,
and which backend ``auto`` picks. The precision policy built on these lives in ``precision``."""
from __future__ import annotations

import functools
import importlib.util
import platform

# CPU features that decide which kernels a backend picks; part of an artifact's device identity.
_CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16",
                 "amx_int8", "amx_fp16")
# ``auto`` tries these in order: TensorRT needs a CUDA GPU; torch always runs.
AUTO_ORDER = ("tensorrt", "openvino", "onnxruntime", "torch")


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=None)
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_features() -> list[str]:
    """The features of ``_CPU_FEATURES`` this CPU has, in that order."""
    return [f for f in _CPU_FEATURES if f in cpu_flags()]


def cpu_has_bf16() -> bool:
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def cpu_has_fp16() -> bool:
    """Native fp16 arithmetic (AVX512-FP16 or AMX-FP16); without it fp16 is emulated or unsupported."""
    return bool({"avx512_fp16", "amx_fp16"} & cpu_flags())


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def gpu_has_bf16(device: str = "cuda") -> bool:
    """bf16 arithmetic on this CUDA GPU (Ampere, compute capability 8.0, and later)."""
    import torch

    if not torch.cuda.is_available():
        return False
    idx = torch.device(device).index or 0
    return torch.cuda.get_device_capability(idx) >= (8, 0)


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def auto_backend(allowed=AUTO_ORDER) -> str | None:
    """The one backend choice for ``auto``: TensorRT on an NVIDIA GPU with tensorrt installed,
    else OpenVINO on the CPU, else ONNX Runtime, else the torch reference -- the first of these
    that is in ``allowed`` (the build takes only backends with artifacts). None: none is usable."""
    for name in AUTO_ORDER:
        if name not in allowed:
            continue
        if name == "tensorrt" and not (cuda_available() and has_module("tensorrt")):
            continue
        if name == "torch" or has_module(name):
            return name
    return None


def device_identity(device: str) -> tuple[str, str]:
    """(human description, identity string for artifact keys) of ``cpu`` or ``cuda[:i]``."""
    if device.startswith("cuda"):
        import torch

        idx = torch.device(device).index or 0
        name = torch.cuda.get_device_name(idx)
        cap = ".".join(map(str, torch.cuda.get_device_capability(idx)))
        return name, f"{name} sm{cap} cuda{torch.version.cuda}"
    feats = ",".join(cpu_features())
    return cpu_name(), f"{cpu_name()} [{feats}]"

