"""The backend x precision cases the suite measures, and how each one is opened or skipped.

Every engine is opened through ``srgan_fast.engines.open_engine``; the one exception is the
torch.compile case, which the suite builds itself (compiled BN-folded generator). A case that
cannot run here is not an error: it is listed as skipped with the reason (library missing,
needs CUDA, backend not written yet, precision not supported), and it is measured
automatically once it can be opened.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import torch

from srgan_fast.hardware import has_module

BASELINE = "torch-fp32"
# What a command runs without --backend or --precision: the auto backend at precision auto.
DEFAULT = "default-auto"
DEFAULT_LABEL = "default (auto)"


@dataclass(frozen=True)
class Case:
    id: str                    # e.g. "openvino-int8"; used in --cases and in file names
    backend: str               # open_engine backend, or "compile" (built here)
    precision: str             # precision asked for
    options: dict = field(default_factory=dict, hash=False, compare=False)
    label: str = ""            # human name for tables

    @property
    def title(self) -> str:
        return self.label or self.id


def _c(id, backend, precision, label, **options):
    return Case(id=id, backend=backend, precision=precision, options=options, label=label)


CPU_CASES = [
    _c("torch-fp32", "torch", "fp32", "PyTorch eager fp32 (baseline)"),
    _c("torch-fp32-cl", "torch", "fp32", "PyTorch fp32 channels_last", channels_last=True),
    _c("torch-bf16-cl", "torch", "bf16", "PyTorch bf16 channels_last", channels_last=True),
    _c("compile-fp32", "compile", "fp32", "torch.compile fp32"),
    _c("triton-fp32", "triton", "fp32", "Triton engine fp32"),
    _c("onnxruntime-fp32", "onnxruntime", "fp32", "ONNX Runtime fp32"),
    _c("openvino-fp32", "openvino", "fp32", "OpenVINO fp32"),
    _c("openvino-bf16", "openvino", "bf16", "OpenVINO bf16"),
    _c("openvino-int8", "openvino", "int8", "OpenVINO int8"),
    _c(DEFAULT, "auto", "auto", DEFAULT_LABEL),
    _c("tensorrt-fp16", "tensorrt", "fp16", "TensorRT fp16"),
    _c("tensorrt-int8", "tensorrt", "int8", "TensorRT int8"),
]

GPU_CASES = [
    _c("torch-fp32", "torch", "fp32", "PyTorch eager fp32 (baseline)"),
    _c("torch-fp16-cl", "torch", "fp16", "PyTorch fp16 channels_last", channels_last=True),
    _c("torch-bf16-cl", "torch", "bf16", "PyTorch bf16 channels_last", channels_last=True),
    _c("compile-fp16", "compile", "fp16", "torch.compile fp16 channels_last", channels_last=True),
    _c("triton-fp32", "triton", "fp32", "Triton engine fp32"),
    _c("triton-fp16", "triton", "fp16", "Triton engine fp16"),
    _c("onnxruntime-fp32", "onnxruntime", "fp32", "ONNX Runtime fp32"),
    _c("onnxruntime-fp16", "onnxruntime", "fp16", "ONNX Runtime fp16"),
    _c("openvino-fp32", "openvino", "fp32", "OpenVINO fp32"),
    _c("openvino-bf16", "openvino", "bf16", "OpenVINO bf16"),
    _c("openvino-int8", "openvino", "int8", "OpenVINO int8"),
    _c("tensorrt-fp16", "tensorrt", "fp16", "TensorRT fp16"),
    _c("tensorrt-int8", "tensorrt", "int8", "TensorRT int8"),
    _c(DEFAULT, "auto", "auto", DEFAULT_LABEL),
]

# Sizes as (batch, LR height, LR width). 270x480 -> 1080p output, 540x960 -> 4K output.
CPU_SIZES = [(1, 128, 128), (4, 128, 128), (1, 270, 480)]
GPU_SIZES = [(1, 270, 480), (8, 270, 480), (1, 540, 960), (4, 540, 960)]

# --quick (CPU, under three minutes on 2 cores): every case at 128x128, the main engines
# also at 270x480. torch.compile is left out: its first compile alone takes ~30 s here.
QUICK_SIZES = [(1, 128, 128), (1, 270, 480)]
QUICK_CASES = {"torch-fp32", "torch-fp32-cl", "torch-bf16-cl", "onnxruntime-fp32",
               "openvino-fp32", "openvino-bf16", "openvino-int8", "triton-fp32",
               "tensorrt-fp16", "tensorrt-int8", DEFAULT}
QUICK_LARGE = {"torch-fp32", "torch-bf16-cl", "openvino-fp32", "openvino-bf16", "openvino-int8", DEFAULT}
QUICK_LEFT_OUT = "not in the --quick set (torch.compile spends ~30 s compiling each new shape)"


def cases_for(device: str) -> list[Case]:
    return list(GPU_CASES if device == "cuda" else CPU_CASES)


def sizes_for(device: str) -> list[tuple[int, int, int]]:
    return list(GPU_SIZES if device == "cuda" else CPU_SIZES)


def select(cases: list[Case], patterns: str | None) -> list[Case]:
    """Cases whose id matches any comma-separated glob; the baseline is always kept first."""
    if patterns:
        pats = [p.strip() for p in patterns.split(",") if p.strip()]
        unknown = [p for p in pats if not any(fnmatch.fnmatch(c.id, p) for c in cases)]
        if unknown or not pats:
            raise ValueError(f"--cases: {', '.join(unknown) or repr(patterns)} matches no case; "
                             f"valid ids: {', '.join(c.id for c in cases)}")
        cases = [c for c in cases if c.id == BASELINE or any(fnmatch.fnmatch(c.id, p) for p in pats)]
    return sorted(cases, key=lambda c: c.id != BASELINE)


def parse_sizes(text: str) -> list[tuple[int, int, int]]:
    """'1x128x128,4x128x128' or '128x128' (batch 1) -> [(1, 128, 128), (4, 128, 128)]."""
    out = []
    for item in text.split(","):
        parts = [int(p) for p in item.strip().lower().split("x") if p]
        if len(parts) == 2:
            parts = [1, *parts]
        if len(parts) != 3 or min(parts) < 1:
            raise ValueError(f"bad size {item!r}: use NxHxW or HxW, e.g. 1x270x480")
        out.append(tuple(parts))
    return out


def static_skip(case: Case, device: str) -> str | None:
    """Why ``case`` cannot run in a ``device`` suite, decided without opening anything."""
    if case.backend == "tensorrt":
        if not torch.cuda.is_available():
            return "needs CUDA (TensorRT runs on NVIDIA GPUs only)"
        if not has_module("tensorrt"):
            return "tensorrt is not installed (pip install 'srgan_fast[gpu]')"
    if case.backend == "triton":
        if device != "cuda":
            return "interpreter only on CPU: too slow (~0.2 GFLOP/s under TRITON_INTERPRET=1)"
        if not has_module("triton"):
            return "triton is not installed"
    if case.backend == "openvino":
        if device == "cuda":
            return "CPU backend: measured by the CPU suite (python -m bench --device cpu)"
        if not has_module("openvino"):
            return "openvino is not installed (pip install 'srgan_fast[cpu]')"
    if case.backend == "onnxruntime" and not has_module("onnxruntime"):
        return "onnxruntime is not installed (pip install 'srgan_fast[cpu]')"
    if case.backend in ("torch", "compile") and device == "cpu" and case.precision == "fp16":
        return "fp16 maps to bf16 on CPU: see the bf16 case"
    if case.backend == "compile" and device == "cpu":
        import shutil
        if not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")):
            return "torch.compile on CPU needs a C++ compiler (none found)"
    return None


class SkipCase(Exception):
    """This case cannot be opened here; the message is the reason shown in the report."""


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    msg = text[0] if text else ""
    if isinstance(e, ModuleNotFoundError) and e.name and e.name.endswith("_engine"):
        return f"backend not available yet ({e.name.rsplit('.', 1)[-1]}.py missing)"
    return f"{e.__class__.__name__}: {msg}"[:300]


def shape_profile(sizes) -> str | None:
    """A MIN:OPT:MAX profile covering ``sizes`` for backends that build for a shape range
    (OpenVINO, ONNX Runtime, TensorRT), or None when the build's default profile already covers
    them -- then the bench uses the same cached artifact as everyone else."""
    sizes = [tuple(s) for s in sizes or []] + [(1, 128, 128)]  # + the quality image
    try:
        from srgan_fast.artifact import DEFAULT_SHAPES as d
    except ImportError:
        return None
    if all(all(a <= b for a, b in zip(s, d.max)) for s in sizes):
        return None
    hi = tuple(max(v) for v in zip(d.max, *sizes))
    return ":".join("x".join(map(str, s)) for s in ((1, 1, 1), d.opt, hi))


def open_case(case: Case, weights: str, device: str, sizes=None, threads: int | None = None):
    """Open the engine for ``case`` or raise SkipCase with the reason."""
    reason = static_skip(case, device)
    if reason:
        raise SkipCase(reason)
    try:
        if case.backend == "compile":
            return CompiledTorchEngine(weights, case.precision, device, **case.options)
        from srgan_fast.engines import default_backend, open_engine

        options = dict(case.options)
        # The default case: the backend auto picks, on the device it picks (as a command does).
        backend = default_backend() if case.backend == "auto" else case.backend
        shapes = shape_profile(sizes) if backend in ("openvino", "onnxruntime", "tensorrt") else None
        if shapes:
            options["shapes"] = shapes
        if threads and device == "cpu" and backend in ("openvino", "onnxruntime"):
            options["threads"] = threads
        if case.backend == "auto" and backend in ("openvino", "onnxruntime"):
            return open_engine(backend, case.precision, weights=weights, **options)
        try:
            return open_engine(backend, case.precision, weights=weights, device=device, **options)
        except TypeError as e:
            if "device" not in str(e):
                raise
            return open_engine(case.backend, case.precision, weights=weights, **options)
    except SkipCase:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to open is reported as a skip reason
        raise SkipCase(_reason(e)) from None


# --- torch.compile: built here, not an engines/ backend ---------------------------------------

def _engine_base():
    from srgan_fast.engines.base import Engine
    return Engine


class CompiledTorchEngine(_engine_base()):
    """The BN-folded generator under ``torch.compile`` (inductor, static shapes).

    Compilation happens on the first call for each new input shape (a recompile per shape),
    so the suite reports that first call separately from the steady-state latency.
    """

    name = "torch.compile"

    def __init__(self, weights: str, precision: str = "fp32", device: str = "cpu",
                 channels_last: bool = False):
        from srgan_fast.checkpoints import load_generator
        from srgan_fast.errors import SrganError
        from srgan_fast.hardware import cpu_name
        from srgan_fast.model import fold_bn, receptive_field_radius
        from srgan_fast.precision import plan

        dev = torch.device(device)
        self.requested_precision = precision
        try:  # the torch engine's precision policy: compile runs what eager torch runs
            self.precision = plan("torch", precision, device).runs
        except SrganError as e:
            raise SkipCase(f"torch.compile: {e}") from None
        self.torch_device = dev
        self.device = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
        g = load_generator(weights)
        self.radius = receptive_field_radius(g)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision, torch.float32)
        model = fold_bn(g).to(dev, self.dtype, memory_format=self.memory_format)
        # dynamic=False: one specialised graph per shape, the fastest steady state.
        self.model = torch.compile(model, dynamic=False)

    def _run(self, lr):
        with torch.inference_mode():
            x = lr.to(self.dtype).contiguous(memory_format=self.memory_format)
            return self.model(x).float().contiguous()
