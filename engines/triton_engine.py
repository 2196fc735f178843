"""Triton engine: the whole BN-folded generator on the fused kernels of ``srgan_fast.kernels``.

Per image: head 9x9 + PReLU (reads the NCHW input directly), per residual block conv+PReLU then
conv+skip, body conv + global skip, two conv+PixelShuffle+PReLU, tail 9x9 + output mapping
(writes the NCHW [0, 1] output directly). Activations stay NHWC in the compute dtype between
kernels; BatchNorm is folded and the weights are packed once, when the engine opens.

On a CUDA GPU the kernels are compiled and autotuned (the first call at each new input shape
pays the tuning). Without CUDA they run in Triton's interpreter (``TRITON_INTERPRET=1``): exact,
but roughly 0.2 GFLOP/s, so only tiny inputs are practical there (a 6x5 image through the full
16-block generator takes seconds); it exists for tests, not for use.
"""
from __future__ import annotations

import importlib.util
import os
import sys

import torch

from .base import Engine

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_KERNELS = "srgan_fast.kernels"


def _import_kernels(dev: torch.device):
    """Import the kernels, choosing the interpreter on CPU (only possible before the first import)."""
    from srgan_fast.errors import SrganError

    if dev.type not in ("cpu", "cuda"):
        raise SrganError(f"the triton engine runs on cuda (or cpu, interpreted), not {dev.type}")
    if importlib.util.find_spec("triton") is None:
        raise SrganError("the triton engine needs triton: pip install 'srgan_fast[triton]'")
    if dev.type == "cpu" and _KERNELS not in sys.modules and "triton" not in sys.modules:
        os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton
    try:
        import srgan_fast.kernels as kernels
    except ImportError as e:
        raise SrganError(f"cannot load the Triton kernels: {e}") from None

    if dev.type == "cpu" and not kernels.INTERPRET:
        raise SrganError("the triton engine on CPU needs TRITON_INTERPRET=1 before triton is imported "
                         "(this process imported it for the GPU): set it in the environment")
    if dev.type == "cuda" and kernels.INTERPRET:
        raise SrganError("TRITON_INTERPRET=1 is set: unset it to run the triton engine on the GPU")
    return kernels


class TritonEngine(Engine):
    name = "triton"

    def __init__(self, generator, precision: str = "fp32", device: str | None = None):
        from srgan_fast.errors import SrganError
        from srgan_fast.hardware import cpu_name
        from srgan_fast.model import fold_bn, receptive_field_radius

        if precision not in ("fp32", "fp16", "bf16", "int8"):
            raise SrganError(f"unknown precision {precision!r} (choose from fp32, fp16, bf16)")
        if precision == "int8":
            raise SrganError("the triton engine has no int8 path: use --backend openvino or tensorrt")
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.k = _import_kernels(dev)
        self.requested_precision = precision
        self.precision = precision
        self.notes = []
        if dev.type == "cpu" and precision == "bf16":
            # The interpreter computes bf16 tl.dot wrongly; fp32 is the nearest it runs right.
            self.precision = "fp32"
            self.notes.append("bf16 asked: the Triton interpreter cannot run bf16 dots correctly, running fp32")
        if dev.type == "cpu":
            self.notes.append("CPU: kernels run in the Triton interpreter (~0.2 GFLOP/s), tiny inputs only")
        self.torch_device = dev
        self.device = (torch.cuda.get_device_name(dev) if dev.type == "cuda"
                       else f"{cpu_name()} (Triton interpreter)")
        self.radius = receptive_field_radius(generator)
        self.output_mapping = generator.output_mapping
        dtype = _DTYPES[self.precision]
        # Peak live activations per LR pixel: the last upsample's input (4C) and output (16C)
        # in the compute dtype, plus the fp32 RGB input and output; 25% for the allocator.
        esize = torch.finfo(dtype).bits // 8
        self.bytes_per_lr_pixel = int(1.25 * (20 * generator.channels * esize + (3 + 48) * 4))

        g = fold_bn(generator)

        def pack(conv, prelu=None, shuffle=False):
            return self.k.pack_conv(conv.weight, conv.bias, None if prelu is None else prelu.weight,
                                    dtype=dtype, shuffle=shuffle, device=dev)

        self.head = pack(g.head, g.head_prelu)
        self.blocks = [(pack(b.conv1, b.prelu), pack(b.conv2)) for b in g.blocks]
        self.body = pack(g.body_conv)
        self.upsample = [pack(u.conv, u.prelu, shuffle=True) for u in g.upsample]
        self.tail = pack(g.tail)

    def _run(self, lr: torch.Tensor) -> torch.Tensor:
        k = self.k
        # NHWC views of NCHW tensors: the head and tail kernels do the layout change themselves.
        skip = k.head_conv_prelu(lr.permute(0, 2, 3, 1), self.head)
        h = skip
        for conv1, conv2 in self.blocks:
            h = k.conv3x3_add(k.conv3x3_prelu(h, conv1), conv2, residual=h)
        h = k.conv3x3_add(h, self.body, residual=skip)
        del skip
        for up in self.upsample:
            h = k.conv3x3_shuffle_prelu(h, up)
        n, hh, ww, _ = h.shape
        out = torch.empty(n, 3, hh, ww, device=self.torch_device, dtype=torch.float32)
        k.tail_conv_map(h, self.tail, self.output_mapping, out=out.permute(0, 2, 3, 1))
        return out

    def info(self) -> dict:
        d = super().info()
        d["interpreter"] = bool(self.k.INTERPRET)
        if self.notes:
            d["notes"] = list(self.notes)
        return d


def open_engine(weights=None, precision: str = "fp32", device: str | None = None, **_unused) -> TritonEngine:
    """Open the Triton engine for ``weights`` (None: the shipped generator)."""
    from srgan_fast.checkpoints import load_generator

    return TritonEngine(load_generator(weights), precision=precision, device=device)
