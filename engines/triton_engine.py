"""Triton engine: the whole BN-folded generator on the fused kernels of ``srgan_fast.kernels``.

Per image: head 9x9 + PReLU (reads the NCHW input directly), per residual block conv+PReLU then
conv+skip, body conv + global skip, two conv+PixelShuffle+PReLU, tail 9x9 + output mapping
(writes the NCHW [0, 1] output directly). Activations stay NHWC in the compute dtype between
kernels; BatchNorm is folded and the weights are packed once, when the engine opens.

On a CUDA GPU the kernels are compiled and autotuned (the first call at each new input shape
pays the tuning). Without CUDA they run in Triton's interpreter (``TRITON_INTERPRET=1``): exact,
but roughly 0.2 GFLOP/s, so only tiny inputs are practical there (a 6x5 image through the full
16-block generator takes seconds); it exists for tests, not for use. So on the CPU the engine
says so when it opens, estimates each call's time from its multiply-adds (measured ~0.2 GFLOP/s),
and shows per-layer progress when a call will take more than a few seconds.
"""
from __future__ import annotations

import os
import sys

import torch

from srgan_fast.hardware import has_module

from .base import Engine, check_options

OPTIONS = ("device", "log", "progress")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_KERNELS = "srgan_fast.kernels"
INTERPRETER_FLOPS = 0.2e9  # measured on this project's CPUs; the estimate only needs the order
PROGRESS_AFTER_S = 5.0     # calls estimated longer than this show a per-layer progress bar


def macs_per_lr_pixel(g) -> int:
    """Multiply-adds per LR pixel (2,218,176 for B=16, C=64: DESIGN.md §2)."""
    c, b = g.channels, g.num_blocks
    return 81 * 3 * c + (2 * b + 1) * 9 * c * c + 9 * c * 4 * c * (1 + 4) + 81 * c * 3 * 16


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _import_kernels(dev: torch.device):
    """Import the kernels, choosing the interpreter on CPU (only possible before the first import)."""
    from srgan_fast.errors import SrganError

    if dev.type not in ("cpu", "cuda"):
        raise SrganError(f"the triton engine runs on cuda (or cpu, interpreted), not {dev.type}")
    if not has_module("triton"):
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

    def __init__(self, generator, precision: str = "fp32", device: str | None = None, log=None,
                 progress: bool = True):
        from srgan_fast.fp16_range import fits
        from srgan_fast.precision import plan

        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # int8 and unknown names: one error line; auto: fp16 on a GPU only where the model fits
        self.plan = plan("triton", precision, str(dev), fp16_fits=lambda: fits(generator))
        self.k = _import_kernels(dev)
        self.requested_precision = precision
        self.precision = self.plan.runs
        self.notes = [self.plan.note] if self.precision != precision else []
        self.log, self.progress = log or _stderr, progress
        self.macs = macs_per_lr_pixel(generator)
        if dev.type == "cpu":
            self.notes.append("CPU: kernels run in the Triton interpreter (~0.2 GFLOP/s), tiny inputs only")
            self.log(f"triton on the CPU runs in Triton's interpreter, about {INTERPRETER_FLOPS / 1e9:.1f} GFLOP/s: "
                     f"a 64x64 image takes about {self.estimate_seconds(1, 64, 64):.0f} s "
                     f"(use --backend openvino for real work)")
        self.torch_device = dev
        self._pack(generator, dev)

    def estimate_seconds(self, n: int, h: int, w: int) -> float:
        """Interpreter time for an n x h x w input: its multiply-adds at the measured rate."""
        return 2 * self.macs * n * h * w / INTERPRETER_FLOPS

    def _pack(self, generator, dev: torch.device) -> None:
        from srgan_fast.hardware import cpu_name
        from srgan_fast.model import fold_bn, receptive_field_radius

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
        self.body = pack(g.body_conv, g.body_prelu)  # PReLU: leftthomas's released variant
        self.upsample = [pack(u.conv, u.prelu, shuffle=True) for u in g.upsample]
        self.tail = pack(g.tail)

    def _layers(self, lr: torch.Tensor):
        """Progress over the layers of one call (a bar when the interpreter will take a while)."""
        n, _, h, w = lr.shape
        total = 1 + 2 * len(self.blocks) + 1 + len(self.upsample) + 1
        seconds = self.estimate_seconds(n, h, w) if self.k.INTERPRET else 0.0
        if not (self.progress and seconds > PROGRESS_AFTER_S):
            return None
        from tqdm import tqdm

        self.log(f"triton interpreter: {n}x{h}x{w} input, about {seconds:.0f} s")
        return tqdm(total=total, desc="triton layers", unit="layer", leave=False)

    def _run(self, lr: torch.Tensor) -> torch.Tensor:
        k, bar = self.k, self._layers(lr)
        step = bar.update if bar is not None else (lambda: None)
        try:
            # NHWC views of NCHW tensors: the head and tail kernels do the layout change themselves.
            skip = k.head_conv_prelu(lr.permute(0, 2, 3, 1), self.head)
            step()
            h = skip
            for conv1, conv2 in self.blocks:
                mid = k.conv3x3_prelu(h, conv1)
                step()
                h = k.conv3x3_add(mid, conv2, residual=h)
                step()
            if self.body.alpha is not None:
                h = k.conv3x3_prelu(h, self.body, residual=skip)
            else:
                h = k.conv3x3_add(h, self.body, residual=skip)
            step()
            del skip
            for up in self.upsample:
                h = k.conv3x3_shuffle_prelu(h, up)
                step()
            n, hh, ww, _ = h.shape
            out = torch.empty(n, 3, hh, ww, device=self.torch_device, dtype=torch.float32)
            k.tail_conv_map(h, self.tail, self.output_mapping, out=out.permute(0, 2, 3, 1))
            step()
        finally:
            if bar is not None:
                bar.close()
        return out

    def info(self) -> dict:
        d = super().info()
        d["interpreter"] = bool(self.k.INTERPRET)
        if self.notes:
            d["notes"] = list(self.notes)
        return d


def open_engine(weights=None, precision: str = "fp32", **options) -> TritonEngine:
    """Open the Triton engine for ``weights`` (None: the shipped generator). Options: ``device``,
    ``log`` (where the CPU warning goes; default stderr), ``progress`` (default True)."""
    from srgan_fast.checkpoints import load_generator
    from srgan_fast.precision import plan

    opts = check_options("triton", options, OPTIONS)
    plan("triton", precision, str(opts.get("device") or "cpu"))  # refuse int8 before loading weights
    return TritonEngine(load_generator(weights), precision=precision, **opts)
