"""PyTorch reference engine: the BN-folded generator in eager mode.

fp32 is the reference every other engine is checked against. Options: ``channels_last`` (faster
on CPU with oneDNN), bf16 autocast on CPUs with bf16 arithmetic, fp16 or bf16 on CUDA.
"""
from __future__ import annotations

import torch

from srgan_fast.hardware import cpu_name, cpu_precision

from .base import Engine

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class TorchEngine(Engine):
    name = "torch"

    def __init__(self, generator, precision: str = "fp32", device: str | None = None,
                 channels_last: bool = False):
        from srgan_fast.model import fold_bn, receptive_field_radius

        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if precision == "int8":
            raise ValueError("the torch engine has no int8 path: use --backend openvino or tensorrt")
        self.requested_precision = precision
        self.precision = precision if dev.type == "cuda" else cpu_precision(precision)
        self.torch_device = dev
        self.device = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = fold_bn(generator).to(dev, memory_format=self.memory_format)
        self.radius = receptive_field_radius(generator)
        if self.precision in _DTYPES:
            self.bytes_per_lr_pixel //= 2

    def _run(self, lr: torch.Tensor) -> torch.Tensor:
        dtype = _DTYPES.get(self.precision)
        with torch.inference_mode(), torch.autocast(self.torch_device.type, dtype=dtype or torch.float32,
                                                    enabled=dtype is not None):
            out = self.model(lr.contiguous(memory_format=self.memory_format))
        return out.float().contiguous()


def open_engine(weights=None, precision: str = "fp32", device: str | None = None,
                channels_last: bool = False, **_unused) -> TorchEngine:
    from srgan_fast.checkpoints import load_generator

    return TorchEngine(load_generator(weights), precision=precision, device=device,
                       channels_last=channels_last)
