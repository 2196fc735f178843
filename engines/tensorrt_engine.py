"""TensorRT runtime on torch CUDA tensors: the tensor-address API, no copies.

``set_input_shape``, ``set_tensor_address`` and ``execute_async_v3`` on torch-allocated CUDA
buffers and a torch CUDA stream. Opens a verified artifact record; the engine is built by
``srgan_fast.build`` (``tensorrt_builder``), and ``tensorrt_pycuda`` runs the same engine without
torch. None of this has run on this project's CPU-only machines: tests/test_tensorrt.py runs it
wherever a ``trt.Builder`` can be created, and elsewhere checks every TensorRT name it uses.
"""
from __future__ import annotations

from pathlib import Path

import torch

from srgan_fast.errors import SrganError

from .base import Engine, ShapeRange, artifact_device, check_options, shape_range
from .tensorrt_common import deserialize, import_tensorrt, io_names, make_logger

OPTIONS = ("device",)


class TensorRTEngine(Engine):
    """Runs a serialized engine on torch CUDA tensors (the tensor-address API, no copies)."""

    name = "tensorrt"

    def __init__(self, engine_path, precision: str = "fp16", requested_precision: str | None = None,
                 device: str = "cuda:0", radius: int = 40, shapes=None, sidecar: dict | None = None):
        if not torch.cuda.is_available():
            raise SrganError("the tensorrt engine needs an NVIDIA GPU with CUDA")
        trt = import_tensorrt()
        self.trt = trt
        self.path = str(engine_path)
        self.sidecar = sidecar
        self.precision = precision
        self.requested_precision = requested_precision or precision
        self.radius = radius
        self.shapes = shapes or ShapeRange()
        self.torch_device = torch.device(device)
        self.device = torch.cuda.get_device_name(self.torch_device)
        # fp16 activations are half the fp32 bytes; TensorRT also needs workspace of its own.
        self.bytes_per_lr_pixel = 12 * 1024 if precision == "fp32" else 8 * 1024
        with torch.cuda.device(self.torch_device):
            self.logger = make_logger(trt)
            self.runtime, self.engine = deserialize(trt, self.logger, Path(engine_path))
            self.context = self.engine.create_execution_context()
            self.stream = torch.cuda.Stream(self.torch_device)
        self.input_name, self.output_name = io_names(trt, self.engine)
        self.in_dtype = self._torch_dtype(self.engine.get_tensor_dtype(self.input_name))
        self.out_dtype = self._torch_dtype(self.engine.get_tensor_dtype(self.output_name))

    def _torch_dtype(self, dt):
        trt = self.trt
        table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int8: torch.int8,
                 trt.int32: torch.int32}
        if hasattr(trt, "bfloat16"):
            table[trt.bfloat16] = torch.bfloat16
        if dt not in table:
            raise SrganError(f"{self.path}: unsupported engine I/O type {dt}")
        return table[dt]

    def _run(self, lr: torch.Tensor) -> torch.Tensor:
        x = lr.to(self.in_dtype).contiguous()
        caller = torch.cuda.current_stream(self.torch_device)
        with torch.cuda.device(self.torch_device):
            if not self.context.set_input_shape(self.input_name, tuple(x.shape)):
                raise ValueError(f"tensorrt engine rejects input shape {tuple(x.shape)} "
                                 f"(profile {self.shapes})")
            out = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)), dtype=self.out_dtype,
                              device=self.torch_device)
            self.context.set_tensor_address(self.input_name, x.data_ptr())
            self.context.set_tensor_address(self.output_name, out.data_ptr())
            # Our own stream (TensorRT warns about the legacy default stream); ordered after the
            # caller's work, and the caller's stream waits for ours before using the result.
            self.stream.wait_stream(caller)
            x.record_stream(self.stream)
            out.record_stream(self.stream)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("tensorrt execute_async_v3 failed: " + " | ".join(self.logger.errors[-3:]))
            caller.wait_stream(self.stream)
        return out.float()

    def info(self) -> dict:
        d = super().info()
        d.update({"artifact": self.path, "tensorrt": self.trt.__version__,
                  "io": {self.input_name: str(self.in_dtype), self.output_name: str(self.out_dtype)}})
        return d

    def close(self) -> None:
        self.context = None
        self.engine = None
        self.runtime = None


def from_artifact(record, **options) -> TensorRTEngine:
    """Open a verified artifact record. Options: ``device`` (another GPU of the same model)."""
    opts = check_options("tensorrt", options, OPTIONS)
    device = artifact_device(record, opts.get("device"))
    return TensorRTEngine(record.path, precision=record.precision, requested_precision=record.precision_requested,
                          device=device, radius=record.model.radius, shapes=shape_range(record),
                          sidecar=record.sidecar)
