"""Measured arithmetic peak of the device, per precision, for the '% of peak' columns of the
doctor and the bench (``bench/worker.py`` imports it from here: nothing imports bench).

Method: the best rate of a large square matrix multiply through torch over a short timed loop
(2*n^3 FLOP per product; int8 counts 2 ops per multiply-add like the others):
- CPU: n=2048, fp32 and bf16 matmul (MKL / oneDNN, all torch threads); int8 with
  ``torch._int_mm``. torch's int8 CPU matmul does not reach the VNNI/AMX-INT8 rate that
  OpenVINO uses, so where the CPU has those units the int8 peak is taken as
  max(measured, 2 x measured bf16) -- one int8 dot-product instruction does twice the MACs of
  the bf16 one -- and marked as estimated.
- CUDA: n=8192, fp32 (TF32 allowed when cuDNN convolutions may use it, as they do by default,
  so fp32 convs and the peak are counted alike), fp16, bf16, and int8 via ``torch._int_mm``;
  timed with CUDA events.
A measured peak is below the data-sheet figure (clock limits, memory, imperfect kernels); it
is the honest ceiling for "how much of this machine does the engine use".
"""
from __future__ import annotations

import time

import torch

CPU_N, CUDA_N = 2048, 8192


def _operands(dtype, n: int, device: str):
    g = torch.Generator(device="cpu").manual_seed(0)
    if dtype == torch.int8:
        a = torch.randint(-64, 64, (n, n), generator=g, dtype=torch.int8)
        b = torch.randint(-64, 64, (n, n), generator=g, dtype=torch.int8)
        return a.to(device), b.to(device)
    return (torch.randn(n, n, generator=g).to(device, dtype),
            torch.randn(n, n, generator=g).to(device, dtype))


def _rate(dtype, n: int, device: str, seconds: float) -> float:
    """Best TFLOP/s (TOP/s for int8) of an n x n x n product over ``seconds``."""
    a, b = _operands(dtype, n, device)
    fn = (lambda: torch._int_mm(a, b)) if dtype == torch.int8 else (lambda: a @ b)
    flop = 2.0 * n ** 3
    fn()  # first call: library init, kernel selection
    best, start = 0.0, time.perf_counter()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
        while time.perf_counter() - start < seconds:
            ev[0].record()
            for _ in range(5):
                fn()
            ev[1].record()
            ev[1].synchronize()
            best = max(best, 5 * flop / (ev[0].elapsed_time(ev[1]) / 1e3))
    else:
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            fn()
            best = max(best, flop / (time.perf_counter() - t0))
    return best / 1e12


def measure_peaks(device: str = "cpu", seconds: float = 1.0) -> dict:
    """{precision: {"tflops": float | None, "method": str}} for fp32, fp16, bf16, int8 on ``device``
    (``cpu``, ``cuda`` or ``cuda:N``)."""
    peaks: dict[str, dict] = {}

    def attempt(name, dtype, n, method):
        try:
            peaks[name] = {"tflops": _rate(dtype, n, device, seconds), "method": method}
        except Exception as e:  # noqa: BLE001 - an unsupported dtype means no peak, not a crash
            peaks[name] = {"tflops": None, "method": f"not measured: {str(e).splitlines()[0][:120]}"}

    if device.startswith("cuda"):
        with torch.cuda.device(torch.device(device)):
            _cuda_peaks(attempt)
    else:
        _cpu_peaks(peaks, attempt)
    return peaks


def _cuda_peaks(attempt) -> None:
    tf32 = torch.backends.cudnn.allow_tf32
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        attempt("fp32", torch.float32, CUDA_N,
                f"matmul {CUDA_N}^3 fp32 ({'TF32 allowed, as cuDNN convs' if tf32 else 'no TF32'})")
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    attempt("fp16", torch.float16, CUDA_N, f"matmul {CUDA_N}^3 fp16")
    attempt("bf16", torch.bfloat16, CUDA_N, f"matmul {CUDA_N}^3 bf16")
    attempt("int8", torch.int8, CUDA_N, f"torch._int_mm {CUDA_N}^3 int8")


def _cpu_peaks(peaks: dict, attempt) -> None:
    from srgan_fast.hardware import cpu_flags, cpu_has_bf16

    threads = torch.get_num_threads()
    attempt("fp32", torch.float32, CPU_N, f"matmul {CPU_N}^3 fp32, {threads} threads")
    if cpu_has_bf16():
        attempt("bf16", torch.bfloat16, CPU_N, f"matmul {CPU_N}^3 bf16, {threads} threads")
    else:
        peaks["bf16"] = {"tflops": None, "method": "no bf16 arithmetic on this CPU (bf16 runs as fp32)"}
    # fp16 on CPU is mapped to bf16 or fp32 (hardware.cpu_precision): never its own peak.
    peaks["fp16"] = {"tflops": None, "method": "fp16 runs as bf16/fp32 on CPU"}
    attempt("int8", torch.int8, CPU_N, f"torch._int_mm {CPU_N}^3 int8, {threads} threads")
    bf16 = peaks["bf16"]["tflops"]
    has_dot_int8 = bool({"amx_int8", "avx512_vnni", "avx_vnni"} & cpu_flags())
    if bf16 and has_dot_int8 and (peaks["int8"]["tflops"] or 0) < 2 * bf16:
        peaks["int8"] = {"tflops": 2 * bf16, "estimated": True,
                         "method": f"estimated: 2 x measured bf16 peak (torch._int_mm measured "
                                   f"{(peaks['int8']['tflops'] or 0) * 1e3:.0f} GOP/s, below VNNI/AMX rate)"}
