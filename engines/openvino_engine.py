"""OpenVINO on the CPU: the default engine on machines without an NVIDIA GPU.

OpenVINO reads the ONNX artifact directly (fp32 graph, or the Q/DQ graph for int8). The
inference precision hint is always set explicitly: on CPUs with AVX512-BF16/AMX the CPU plugin
otherwise runs bf16 even for an "fp32" model. After compiling, the engine reads back the
precision each convolution actually runs in and records it, so ``precision`` is what runs.
"""
from __future__ import annotations

import collections

import numpy as np
import torch

from srgan_fast.errors import SrganError, require
from srgan_fast.hardware import cpu_has_bf16, cpu_name

from .base import Engine, ShapeRange

# Precision that runs -> OpenVINO inference precision hint. INT8 convolutions come from the Q/DQ
# graph; the layers between them (PReLU, residual adds, pixel shuffle) run at the hint: bf16
# where the CPU has it (measured 0.33 s vs 0.42 s at 270x480 for 0.001 dB on Set5/Set14).
_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def _hint(precision: str) -> str:
    if precision == "int8" and cpu_has_bf16():
        return "bf16"
    return _HINTS[precision]
_RUNTIME_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "i8": "int8", "u8": "int8"}


def _openvino():
    return require("openvino", "cpu")


class OpenVINOEngine(Engine):
    name = "openvino"

    def __init__(self, onnx_path, precision: str = "fp32", requested_precision: str | None = None,
                 radius: int = 40, shapes: ShapeRange | None = None, threads: int | None = None,
                 int8_hint: str | None = None, sidecar: dict | None = None):
        ov = _openvino()
        if precision not in _HINTS:
            raise SrganError(f"the openvino engine runs fp32, bf16 or int8, not {precision!r}")
        self.requested_precision = requested_precision or precision
        self.radius = radius
        self.shapes = shapes or ShapeRange()
        self.device = cpu_name()
        self.torch_device = torch.device("cpu")
        self.path = str(onnx_path)
        self.sidecar = sidecar
        hint = int8_hint if precision == "int8" and int8_hint else _hint(precision)
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        core = ov.Core()
        try:
            self.compiled = core.compile_model(core.read_model(self.path), "CPU", config)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            raise SrganError(f"{self.path}: OpenVINO cannot compile it ({first[:200]})") from None
        self.request = self.compiled.create_infer_request()
        hint_type = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.hint = hint_type.to_string() if hasattr(hint_type, "to_string") else str(hint_type)
        self.runtime = self._runtime_precisions()
        self.precision = self._conv_precision(precision)
        # Working memory per LR pixel: the widest layers (256 channels at 2x, 64 at 4x) in the
        # runtime's activation type, plus input/output copies (measured RSS stays below this).
        self.bytes_per_lr_pixel = 12 * 1024 if self.hint == "f32" and self.precision != "int8" else 8 * 1024

    def _runtime_precisions(self) -> dict:
        counts = collections.Counter()
        for op in self.compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if "layerType" in info and "runtimePrecision" in info:
                counts[(str(info["layerType"].astype(str)), str(info["runtimePrecision"].astype(str)))] += 1
        out: dict[str, dict[str, int]] = {}
        for (layer, prec), n in counts.items():
            out.setdefault(layer, {})[prec] = n
        return out

    def _conv_precision(self, planned: str) -> str:
        """The precision most convolutions run in (what the sidecar and info() report)."""
        convs = self.runtime.get("Convolution", {})
        if not convs:
            return planned
        top = max(convs, key=convs.get)
        return _RUNTIME_NAMES.get(top, planned)

    def _run(self, lr: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(lr.numpy())
        result = self.request.infer({0: x}, share_inputs=True, share_outputs=False)
        return torch.from_numpy(result[0])

    def info(self) -> dict:
        d = super().info()
        d.update({"artifact": self.path, "inference_precision_hint": self.hint,
                  "runtime_precisions": self.runtime,
                  "threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS"))})
        return d

    def close(self) -> None:
        self.request = None
        self.compiled = None


def from_artifact(art, threads: int | None = None, **_unused) -> OpenVINOEngine:
    sc = art.sidecar
    return OpenVINOEngine(art.path, precision=sc["precision"], requested_precision=sc["precision_requested"],
                          radius=sc["model"]["radius"], shapes=art.shape_range(), threads=threads, sidecar=sc)


def open_engine(weights=None, precision: str = "fp32", shapes=None, calib=None, out=None, strict: bool = False,
                rebuild: bool = False, threads: int | None = None, log=None, **_unused) -> OpenVINOEngine:
    """Build (or load from the cache) the OpenVINO artifact for ``weights`` and open it."""
    from srgan_fast.artifacts import ensure_artifact

    art = ensure_artifact(weights, precision, "openvino", shapes=shapes, calib=calib, out=out,
                          strict=strict, rebuild=rebuild, log=log)
    return from_artifact(art, threads=threads)
