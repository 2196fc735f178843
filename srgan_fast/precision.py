"""Precision policy: the one home for "precision asked -> precision that runs", per backend and CPU.

DESIGN.md §3: a precision the target cannot run is mapped to the nearest one it can, and the
mapping is said (``Plan.note``) and recorded; nothing is silently different from what was asked.
Every backend, the build and the bench ask ``plan()``; a combination that cannot run at all
(int8 on the eager backends) is one ``SrganError`` line naming the backends that can.

``auto`` (the commands' default) is decided here too, by ``choose()``: the fastest precision that
stays within the tolerance table of fp32 (``parity.TOLERANCES``) on this backend and device. On
an NVIDIA GPU fp16 when the model's fp16 range check passes (``fp16_range.fits``), else bf16
where the GPU and backend have it, else fp32; on a CPU bf16 when it has native bf16 arithmetic
(AVX512-BF16 or AMX) and the backend runs bf16 there, else fp32. INT8 is never chosen (it needs
calibration data and moves the output by about 0.1 dB): it runs only when asked. ``resolve()``
turns ``auto`` into that precision once, so everything below it (cache keys, sidecars, job
manifests) sees only the precision actually asked of the engine, and the reason is said.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import SrganError
from .hardware import cpu_flags, cpu_has_bf16

PRECISIONS = ("fp32", "fp16", "bf16", "int8")   # what an engine can be asked to run
AUTO = "auto"
CHOICES = (AUTO,) + PRECISIONS                  # what the commands accept
DEFAULT_PRECISION = AUTO
PRECISION_HELP = "fp32, fp16, bf16 or int8; a backend that cannot run it says what runs instead"
AUTO_HELP = ("auto: the fastest precision within the tolerance table of fp32 here (bf16 on a CPU "
             "with native bf16, fp16 on an NVIDIA GPU when the model's range fits; else fp32); "
             "fp32: the exact reference output; fp16, bf16; int8 (calibrated) only when asked. "
             "A backend that cannot run it says what runs instead")
EXACT = "fp32 for exact reference output"     # the hint every auto reason ends with


@dataclass(frozen=True)
class Plan:
    asked: str
    runs: str
    graph: str | None  # ONNX graph an artifact is built from (fp32, fp16, int8); None: eager backends
    note: str


def check(asked: str, allowed=PRECISIONS) -> str:
    if asked not in allowed:
        raise SrganError(f"unknown precision {asked!r} (choose from {', '.join(allowed)})")
    return asked


@dataclass(frozen=True)
class Choice:
    """What ``auto`` picks: the precision to ask of the engine, and why, in words."""
    precision: str
    why: str

    @property
    def line(self) -> str:
        """``auto: <why>; fp32 for exact reference output`` (the start-of-run line's parenthesis)."""
        return f"auto: {self.why}" + ("" if self.precision == "fp32" else f"; {EXACT}")


def _on_gpu(backend: str, device: str) -> bool:
    return str(device).startswith("cuda") and backend != "openvino"


def _fp16_verdict(fp16_fits) -> tuple[bool, str]:
    """(fits, why) from a bool, a (bool, why) pair, a callable returning either, or None (unknown)."""
    value = fp16_fits() if callable(fp16_fits) else fp16_fits
    if value is None:
        return False, "the model's fp16 range was not checked"
    if isinstance(value, tuple):
        return bool(value[0]), str(value[1])
    return bool(value), "the model's fp16 range check passes" if value else "the model's fp16 range check fails"


def choose(backend: str, device: str = "cpu", fp16_fits=None, gpu_bf16=None) -> Choice:
    """The precision ``auto`` runs on ``backend`` at ``device`` (``cpu`` or ``cuda[:i]``).

    ``fp16_fits``: the model's fp16 range check (``fp16_range.fits``), as a bool, a (bool, why)
    pair or a callable giving one, called only on a GPU; None means unchecked (no fp16).
    ``gpu_bf16``: whether the GPU has bf16 arithmetic (default: ``hardware.gpu_has_bf16``)."""
    device = str(device)
    if _on_gpu(backend, device):
        fits, why = _fp16_verdict(fp16_fits)
        if fits:
            return Choice("fp16", f"fp16 on the GPU: {why}")
        if backend in ("tensorrt", "onnxruntime"):   # their graphs have no bf16 convolutions
            return Choice("fp32", f"{why}, and {backend} here has no bf16 path: fp32")
        if gpu_bf16 is None:
            from .hardware import gpu_has_bf16
            gpu_bf16 = gpu_has_bf16(device)
        if gpu_bf16:
            return Choice("bf16", f"{why}: bf16 on the GPU (fp32's range)")
        return Choice("fp32", f"{why}, and this GPU has no bf16: fp32")
    if backend == "triton":
        return Choice("fp32", "the Triton interpreter on a CPU runs bf16 dots wrongly: fp32")
    if backend == "onnxruntime":
        return Choice("fp32", "ONNX Runtime's CPU provider has no fast 16-bit convolutions: fp32")
    if backend == "tensorrt":   # only on a GPU; asked here it fails in plan() with its own line
        return Choice("fp16", "TensorRT runs fp16")
    if cpu_has_bf16():
        return Choice("bf16", f"native bf16 on this CPU with {_bf16_units()}")
    return Choice("fp32", "this CPU has no native bf16 arithmetic (AVX512-BF16 or AMX): fp32")


def resolve(backend: str, asked: str, device: str = "cpu", fp16_fits=None) -> tuple[str, Choice | None]:
    """(precision to ask of the engine, the auto ``Choice`` or None): ``asked`` itself unless it
    is ``auto``. The one place ``auto`` becomes a precision."""
    check(asked, CHOICES)
    if asked != AUTO:
        return asked, None
    choice = choose(backend, device, fp16_fits)
    return choice.precision, choice


def cpu_precision(asked: str) -> str:
    """fp16 and bf16 on a CPU: bf16 where the CPU has bf16 arithmetic (same memory as fp16, fp32's
    range), else fp32. fp32 and int8 as asked."""
    if check(asked) in ("fp16", "bf16"):
        return "bf16" if cpu_has_bf16() else "fp32"
    return asked


def _bf16_units() -> str:
    """How this CPU does bf16, in words (the note must not promise AMX where there is none)."""
    return "AMX" if "amx_bf16" in cpu_flags() else "AVX512-BF16"


def _no_int8(backend: str) -> SrganError:
    return SrganError(f"the {backend} engine has no int8 path: use --backend openvino (CPU) or "
                      f"tensorrt (GPU) for int8")


def _eager(backend: str, asked: str, device: str) -> Plan:
    if asked == "int8":
        raise _no_int8(backend)
    if device.startswith("cuda"):
        return Plan(asked, asked, None, f"{asked} on the GPU")
    if backend == "triton":
        if asked == "bf16":  # the interpreter computes bf16 tl.dot wrongly
            return Plan(asked, "fp32", None, "bf16 asked: the Triton interpreter cannot run bf16 dots "
                                             "correctly, running fp32")
        return Plan(asked, asked, None, "CPU: Triton interpreter")
    runs = cpu_precision(asked)
    if runs == asked:
        return Plan(asked, runs, None, "CPU")
    why = "bf16 autocast" if runs == "bf16" else "this CPU has no bf16 arithmetic"
    return Plan(asked, runs, None, f"{asked} asked: running {runs} on the CPU ({why})")


def _openvino(asked: str) -> Plan:
    if asked == "int8":
        between = "bf16" if cpu_has_bf16() else "fp32"
        return Plan(asked, "int8", "int8",
                    f"INT8 convolutions from the Q/DQ graph; the layers between them {between}")
    if asked == "fp32":
        return Plan(asked, "fp32", "fp32", "inference precision hint f32 (OpenVINO would pick bf16 "
                                           "here by default)" if cpu_has_bf16() else "inference precision hint f32")
    if not cpu_has_bf16():
        return Plan(asked, "fp32", "fp32", f"{asked} asked: this CPU has no bf16 arithmetic, running fp32")
    units = _bf16_units()
    note = f"inference precision hint bf16 ({units})"
    if asked == "fp16":
        note = (f"fp16 asked: running bf16 instead. OpenVINO's f16 hint on this CPU (no AMX-FP16) "
                f"measured slower than fp32; bf16 has the same 16-bit storage, {units} kernels and "
                f"fp32's range (no overflow)")
    return Plan(asked, "bf16", "fp32", note)


def _onnxruntime(asked: str, device: str) -> Plan:
    if device == "cpu":
        if asked == "int8":
            return Plan(asked, "int8", "int8", "Q/DQ graph on ONNX Runtime's CPU provider (slow and "
                                               "memory-hungry at large sizes; OpenVINO is the fast CPU INT8 path)")
        if asked in ("fp16", "bf16"):
            return Plan(asked, "fp32", "fp32", f"{asked} asked: ONNX Runtime's CPU provider has no fast "
                                               "16-bit convolutions, running fp32 (use --target openvino for bf16)")
        return Plan(asked, "fp32", "fp32", "CPU provider")
    if asked == "int8":
        raise SrganError("int8 on ONNX Runtime's CUDA provider is not supported here: "
                         "use --target tensorrt for GPU INT8")
    if asked == "fp32":
        return Plan(asked, "fp32", "fp32", "CUDA provider")
    extra = " (bf16 asked: ONNX Conv has no bf16 type)" if asked == "bf16" else ""
    return Plan(asked, "fp16", "fp16", "fp16 graph on the CUDA provider" + extra)


def _tensorrt(asked: str) -> Plan:
    # Strongly typed (TensorRT 11 has no weak typing): the graph's types are what runs.
    if asked == "int8":
        return Plan(asked, "int8", "int8", "explicit quantization from the Q/DQ graph (strongly typed)")
    if asked == "fp32":
        return Plan(asked, "fp32", "fp32", "fp32 graph, TF32 disabled (strongly typed)")
    note = "fp16 graph (strongly typed), overflow-prone layers kept fp32"
    if asked == "bf16":
        note = "bf16 asked: ONNX Conv has no bf16 type, building the fp16 graph instead; " + note
    return Plan(asked, "fp16", "fp16", note)


def plan(backend: str, asked: str, device: str = "cpu", fp16_fits=None) -> Plan:
    """What runs when ``asked`` is requested from ``backend`` on ``device`` (``cpu``/``cuda[:i]``).
    ``auto``: the plan of the precision ``choose()`` picks, with ``asked`` "auto" and the reason
    first in the note (``fp16_fits`` as for ``choose``)."""
    device = str(device)
    if check(asked, CHOICES) == AUTO:
        chosen, choice = resolve(backend, asked, device, fp16_fits)
        concrete = plan(backend, chosen, device)
        return replace(concrete, asked=AUTO, note=f"{choice.line}; {concrete.note}")
    if backend in ("torch", "triton"):
        return _eager(backend, asked, device)
    if backend == "openvino":
        return _openvino(asked)
    if backend == "onnxruntime":
        return _onnxruntime(asked, device)
    if backend == "tensorrt":
        return _tensorrt(asked)
    raise SrganError(f"unknown backend {backend!r}")


def openvino_hint(runs: str) -> str:
    """OpenVINO's INFERENCE_PRECISION_HINT for the precision that runs. INT8 convolutions come
    from the Q/DQ graph; the layers between them (PReLU, adds, pixel shuffle) run at the hint:
    bf16 where the CPU has it (measured 0.33 s vs 0.42 s at 270x480 for 0.001 dB on Set5/Set14)."""
    if runs == "int8":
        return "bf16" if cpu_has_bf16() else "f32"
    return {"fp32": "f32", "bf16": "bf16"}[runs]
