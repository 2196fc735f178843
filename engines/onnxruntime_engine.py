"""ONNX Runtime: the reference ONNX runtime on the CPU, and its CUDA provider where present.

Runs the ONNX artifact as written: the fp32 graph, the fp16 graph (CUDA provider) or the Q/DQ
INT8 graph. On the CPU it is slower than OpenVINO (it does not fuse Conv with PReLU, and its
INT8 path needs a lot of memory at large sizes), so it serves as a cross-check and a fallback.
"""
from __future__ import annotations

import torch

from srgan_fast.errors import SrganError, require
from srgan_fast.hardware import cpu_name

from .base import Engine, ShapeRange, artifact_device, check_options, shape_range

OPTIONS = ("threads", "device")


def _ort():
    return require("onnxruntime", "cpu")


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"

    def __init__(self, onnx_path, precision: str = "fp32", requested_precision: str | None = None,
                 device: str = "cpu", radius: int = 40, shapes: ShapeRange | None = None,
                 threads: int | None = None, sidecar: dict | None = None):
        ort = _ort()
        self.requested_precision = requested_precision or precision
        self.precision = precision
        self.radius = radius
        self.shapes = shapes or ShapeRange()
        self.path = str(onnx_path)
        self.sidecar = sidecar
        # Outputs come back through host memory either way; the engine's tensors live on the CPU.
        self.torch_device = torch.device("cpu")
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise SrganError("onnxruntime has no CUDA provider here: pip install onnxruntime-gpu")
            index = torch.device(device).index or 0
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
            self.device = torch.cuda.get_device_name(index) if torch.cuda.is_available() else device
        else:
            providers = ["CPUExecutionProvider"]
            self.device = cpu_name()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(self.path, opts, providers=providers)
        except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
            first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            raise SrganError(f"{self.path}: ONNX Runtime cannot load it ({first[:200]})") from None
        self.providers = self.session.get_providers()
        self.input_name = self.session.get_inputs()[0].name
        if precision == "int8":
            # Q/DQ on the CPU provider keeps large int8/int32 intermediates (measured 14.6 GB RSS
            # at 270x480): let the tiler cut big frames.
            self.bytes_per_lr_pixel = 48 * 1024

    def _run(self, lr: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: lr.contiguous().numpy()})[0]
        return torch.from_numpy(out)

    def info(self) -> dict:
        d = super().info()
        d.update({"artifact": self.path, "providers": self.providers})
        return d

    def close(self) -> None:
        self.session = None


def from_artifact(record, **options) -> OnnxRuntimeEngine:
    """Open a verified artifact record. Options: ``threads``; ``device`` (another GPU index for a
    CUDA-provider artifact)."""
    opts = check_options("onnxruntime", options, OPTIONS)
    device = artifact_device(record, opts.get("device"))
    return OnnxRuntimeEngine(record.path, precision=record.precision, requested_precision=record.precision_requested,
                             device=device, radius=record.model.radius, shapes=shape_range(record),
                             threads=opts.get("threads"), sidecar=record.sidecar)
