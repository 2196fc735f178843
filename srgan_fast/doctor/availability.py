"""Can a backend run here, and if not, why and how to get it: one line each, never a traceback.

Checked before any work, from what is installed (``hardware.has_module``, no imports of the
libraries themselves) and the device; a combination the precision policy refuses (int8 on the
eager backends) is a skipped row with the policy's own sentence.
"""
from __future__ import annotations

from srgan_fast.engines import ARTIFACT_BACKENDS
from srgan_fast.hardware import has_module

# What the build needs to make an artifact (export, its ONNX Runtime check, the fp16 graph).
_BUILD_MODULES = ("onnx", "onnxscript", "onnxruntime")
_CPU_EXTRA = "pip install 'srgan_fast[cpu]' (openvino, nncf, onnx, onnxruntime, onnxscript)"


def _tensorrt_wheel() -> str:
    """The TensorRT wheel matching this torch's CUDA major version."""
    import torch

    major = (torch.version.cuda or "12").split(".")[0]
    return f"pip install tensorrt-cu{major} pycuda"


def _missing(modules) -> list[str]:
    return [m for m in modules if not has_module(m)]


def backend_skip(backend: str, device: str, quick: bool) -> str | None:
    """Why ``backend`` cannot run on ``device`` here, with how to get it; None: it can run."""
    cuda = device.startswith("cuda")
    if backend == "tensorrt":
        missing = _missing(("tensorrt", *_BUILD_MODULES))
        install = f"not installed: {_tensorrt_wheel()}" if "tensorrt" in missing else (
            f"the build needs {', '.join(missing)}: {_CPU_EXTRA}" if missing else "")
        if not cuda:
            return "needs an NVIDIA GPU (run with --device cuda)" + (f"; {install}" if install else "")
        return install or None
    if backend == "triton":
        if not has_module("triton"):
            return "not installed: pip install triton (or 'srgan_fast[triton]')"
        if not cuda and quick:
            return "no CUDA device (CPU runs only the Triton interpreter, ~0.2 GFLOP/s: skipped by --quick)"
        return None
    if backend == "openvino":
        if cuda:
            return "a CPU backend (run with --device cpu)"
        missing = _missing(("openvino", *_BUILD_MODULES))
        return f"not installed: {_CPU_EXTRA}; missing {', '.join(missing)}" if missing else None
    if backend == "onnxruntime":
        missing = _missing(_BUILD_MODULES)
        if missing:
            return f"not installed: {_CPU_EXTRA}; missing {', '.join(missing)}"
        if cuda and not _ort_has_cuda():
            return "onnxruntime has no CUDA provider here: pip install onnxruntime-gpu"
        return None
    return None  # torch always runs


def _ort_has_cuda() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def precision_skip(backend: str, precision: str, device: str) -> str | None:
    """Why this precision cannot run on ``backend`` (the precision policy's sentence), or None."""
    from srgan_fast.errors import SrganError
    from srgan_fast.precision import plan

    try:
        the_plan = plan(backend, precision, device)
    except SrganError as e:
        return str(e)
    if backend in ARTIFACT_BACKENDS and the_plan.graph == "int8" and not has_module("nncf"):
        return "int8 needs NNCF to quantize the graph: pip install nncf"
    return None
