"""PyTorch reference engine: the BN-folded generator in eager mode.

fp32 is the reference every other engine is checked against. Options: ``channels_last`` (faster
on CPU with oneDNN), bf16 autocast on CPUs with bf16 arithmetic, fp16 or bf16 on CUDA; what runs
for what is asked comes from ``srgan_fast.precision``.
"""
from __future__ import annotations

import torch

from srgan_fast.hardware import cpu_name
from srgan_fast.precision import plan

from .base import Engine, check_options

OPTIONS = ("device", "channels_last")
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class TorchEngine(Engine):
    name = "torch"

    def __init__(self, generator, precision: str = "fp32", device: str | None = None,
                 channels_last: bool = False):
        from srgan_fast.model import fold_bn, receptive_field_radius

        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        from srgan_fast.fp16_range import fits

        # int8: one error line naming the backends that can; auto: fp16 on a GPU only where it fits
        self.plan = plan("torch", precision, str(dev), fp16_fits=lambda: fits(generator))
        self.requested_precision = precision
        self.precision = self.plan.runs
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


def open_engine(weights=None, precision: str = "fp32", **options) -> TorchEngine:
    """Options: ``device`` (default cuda when present, else cpu), ``channels_last``."""
    from srgan_fast.checkpoints import load_generator

    opts = check_options("torch", options, OPTIONS)
    plan("torch", precision, str(opts.get("device") or "cpu"))  # refuse int8 before loading weights
    return TorchEngine(load_generator(weights), precision=precision, **opts)
