"""OpenVINO on the CPU: the default engine on machines without an NVIDIA GPU.

OpenVINO reads the ONNX artifact directly (fp32 graph, or the Q/DQ graph for int8). The
inference precision hint is always set explicitly (``precision.openvino_hint``): on CPUs with
AVX512-BF16/AMX the CPU plugin otherwise runs bf16 even for an "fp32" model. After compiling, the
engine reads back the precision each convolution actually runs in and records it, so
``precision`` is what runs. The compiled model is cached beside the artifact (OpenVINO's
CACHE_DIR), so later opens skip most of the compile.
"""
from __future__ import annotations

import collections
import os

import numpy as np
import torch

from srgan_fast.errors import SrganError, require
from srgan_fast.hardware import cpu_name
from srgan_fast.precision import openvino_hint

from .base import Engine, ShapeRange, artifact_device, check_options, shape_range

OPTIONS = ("threads", "compile_cache", "device")
CACHE_FOLDER = "openvino_cache"
_RUNTIME_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "i8": "int8", "u8": "int8"}


def _openvino():
    return require("openvino", "cpu")


class OpenVINOEngine(Engine):
    name = "openvino"

    def __init__(self, onnx_path, precision: str = "fp32", requested_precision: str | None = None,
                 radius: int = 40, shapes: ShapeRange | None = None, threads: int | None = None,
                 int8_hint: str | None = None, sidecar: dict | None = None, cache_dir=None):
        ov = _openvino()
        if precision not in ("fp32", "bf16", "int8"):
            raise SrganError(f"the openvino engine runs fp32, bf16 or int8, not {precision!r}")
        self.requested_precision = requested_precision or precision
        self.radius = radius
        self.shapes = shapes or ShapeRange()
        self.device = cpu_name()
        self.torch_device = torch.device("cpu")
        self.path = str(onnx_path)
        self.sidecar = sidecar
        hint = int8_hint if precision == "int8" and int8_hint else openvino_hint(precision)
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if cache_dir is not None:
            config["CACHE_DIR"] = str(cache_dir)
        try:
            # By path, so a compiled-model cache hit skips reading the ONNX as well.
            self.compiled = ov.Core().compile_model(self.path, "CPU", config)
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


def _cache_dir(record, wanted: bool):
    """OpenVINO's compiled-model cache, inside the artifact folder when that folder is writable."""
    folder = record.path.parent
    return folder / CACHE_FOLDER if wanted and os.access(folder, os.W_OK) else None


def from_artifact(record, **options) -> OpenVINOEngine:
    """Open a verified artifact record. Options: ``threads``; ``compile_cache`` (default True);
    ``device`` (the CPU only)."""
    opts = check_options("openvino", options, OPTIONS)
    artifact_device(record, opts.get("device"))
    return OpenVINOEngine(record.path, precision=record.precision, requested_precision=record.precision_requested,
                          radius=record.model.radius, shapes=shape_range(record), threads=opts.get("threads"),
                          sidecar=record.sidecar, cache_dir=_cache_dir(record, opts.get("compile_cache", True)))
