"""What the machine can run: CPU features and names, CUDA devices, precision mapping (DESIGN.md §3)."""
from __future__ import annotations

import functools
import platform

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


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


def cpu_has_bf16() -> bool:
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def cpu_has_fp16() -> bool:
    """Native fp16 arithmetic (AVX512-FP16 or AMX-FP16); without it fp16 is emulated or unsupported."""
    return bool({"avx512_fp16", "amx_fp16"} & cpu_flags())


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_precision(asked: str) -> str:
    """The precision a CPU backend should run when ``asked`` is requested.

    fp16 maps to bf16 where the CPU has bf16 arithmetic (same memory, wider range), else fp32;
    bf16 falls back to fp32 without bf16 support. Callers print and record the mapping.
    """
    if asked not in PRECISIONS:
        raise ValueError(f"unknown precision {asked!r} (choose from {', '.join(PRECISIONS)})")
    if asked in ("fp16", "bf16"):
        return "bf16" if cpu_has_bf16() else "fp32"
    return asked
