"""GPU benchmark of the fused Triton kernels against PyTorch, kernel by kernel and end to end.

    python bench/bench_kernels.py [--dtype fp16] [--batch 1] [--lr 270x480] [--out FILE.json]

Each fused kernel runs at the shapes it sees for a 1080p output frame (270x480 LR input) and is
timed against the same computation in PyTorch: cuDNN convolution in channels_last, same dtype,
``cudnn.benchmark`` on (TF32 off, so fp32 means fp32 on both sides), followed by the unfused
PReLU / add / PixelShuffle / output mapping ops. The cuDNN convolution alone is timed too, to
show what the unfused epilogue costs. Then the whole generator: the triton engine against the
torch engine (autocast, channels_last) and against a ``.half()``/``.bfloat16()`` channels_last
module. Times are medians of CUDA-event timings after a warm-up that includes Triton's
autotuning; TFLOP/s counts 2 FLOP per multiply-add. Without CUDA it says so and exits 0.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import torch
import torch.nn.functional as F

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def cuda_time_ms(fn, warmup: int = 5, reps: int = 20) -> float:
    """Median milliseconds of ``fn()`` over ``reps`` CUDA-event timings, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def kernel_cases(dtype, n: int, h: int, w: int, c: int = 64, device: str = "cuda"):
    """(name, MACs, triton fn, torch fn, torch conv-only fn) per fused kernel."""
    from srgan_fast import kernels as K

    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(0)

    def rand(*shape, scale=1.0):
        return torch.randn(*shape, device=dev, generator=gen) * scale

    def cl(t):  # channels_last activations; .permute(0, 2, 3, 1) of these is contiguous NHWC
        return t.to(dtype).contiguous(memory_format=torch.channels_last)

    def layer(cin, cout, k, prelu, shuffle=False):
        wt = rand(cout, cin, k, k, scale=(cin * k * k) ** -0.5)
        b = rand(cout, scale=0.1)
        a = torch.full((1,), 0.25, device=dev) if prelu else None
        return wt.to(dtype), b.to(dtype), a, K.pack_conv(wt.to(dtype), b, a, dtype=dtype, shuffle=shuffle)

    cases = []
    # head: NCHW fp32 frame in, 9x9 3->64 + PReLU.
    lr = torch.rand(n, 3, h, w, device=dev, generator=gen)
    wt, b, a, p = layer(3, c, 9, True)
    cases.append(("head 9x9 3->64 + PReLU", n * h * w * 3 * c * 81,
                  lambda: K.head_conv_prelu(lr.permute(0, 2, 3, 1), p),
                  lambda: F.prelu(F.conv2d(cl(lr), wt, b, padding=4), a.to(dtype)),
                  lambda: F.conv2d(cl(lr), wt, b, padding=4)))
    x = cl(rand(n, c, h, w))
    wt1, b1, a1, p1 = layer(c, c, 3, True)
    cases.append(("conv3x3 + bias + PReLU", n * h * w * c * c * 9,
                  lambda: K.conv3x3_prelu(x.permute(0, 2, 3, 1), p1),
                  lambda: F.prelu(F.conv2d(x, wt1, b1, padding=1), a1.to(dtype)),
                  lambda: F.conv2d(x, wt1, b1, padding=1)))
    wt2, b2, _, p2 = layer(c, c, 3, False)
    res = cl(rand(n, c, h, w))
    cases.append(("conv3x3 + bias + residual", n * h * w * c * c * 9,
                  lambda: K.conv3x3_add(x.permute(0, 2, 3, 1), p2, residual=res.permute(0, 2, 3, 1)),
                  lambda: F.conv2d(x, wt2, b2, padding=1) + res,
                  lambda: F.conv2d(x, wt2, b2, padding=1)))
    for scale in (1, 2):
        xs = cl(rand(n, c, h * scale, w * scale))
        wt3, b3, a3, p3 = layer(c, 4 * c, 3, True, shuffle=True)
        cases.append((f"conv3x3 64->256 + shuffle + PReLU @{h * scale}x{w * scale}",
                      n * h * w * scale * scale * c * 4 * c * 9,
                      (lambda xs=xs, p3=p3: K.conv3x3_shuffle_prelu(xs.permute(0, 2, 3, 1), p3)),
                      (lambda xs=xs, wt3=wt3, b3=b3, a3=a3:
                       F.prelu(F.pixel_shuffle(F.conv2d(xs, wt3, b3, padding=1), 2), a3.to(dtype))),
                      (lambda xs=xs, wt3=wt3, b3=b3: F.conv2d(xs, wt3, b3, padding=1))))
    # tail: 9x9 64->3 at the output size, (x + 1) / 2, clamp, NCHW fp32 out.
    xt = cl(rand(n, c, 4 * h, 4 * w))
    wt4, b4, _, p4 = layer(c, 3, 9, False)

    def triton_tail():
        out = torch.empty(n, 3, 4 * h, 4 * w, device=dev)
        K.tail_conv_map(xt.permute(0, 2, 3, 1), p4, "pm1", out=out.permute(0, 2, 3, 1))
        return out.permute(0, 2, 3, 1)

    cases.append(("tail 9x9 64->3 + map to [0,1]", n * 16 * h * w * c * 3 * 81, triton_tail,
                  lambda: ((F.conv2d(xt, wt4, b4, padding=4) + 1) * 0.5).clamp_(0, 1).float().contiguous(),
                  lambda: F.conv2d(xt, wt4, b4, padding=4)))
    return cases


def bench_kernels(dtype, n, h, w, reps, device="cuda", timer=cuda_time_ms):
    rows = []
    for name, macs, tri, ref, conv_only in kernel_cases(dtype, n, h, w, device=device):
        t_tri = timer(tri, reps=reps)
        t_ref = timer(ref, reps=reps)
        t_conv = timer(conv_only, reps=reps)
        y_tri, y_ref = tri(), ref()
        if y_ref.shape != y_tri.shape:  # torch gives NCHW (channels_last) tensors
            y_ref = y_ref.permute(0, 2, 3, 1)
        tf = 2 * macs / 1e12
        rows.append({"kernel": name, "gflop": round(2 * macs / 1e9, 2),
                     "triton_ms": round(t_tri, 4), "torch_ms": round(t_ref, 4), "cudnn_conv_only_ms": round(t_conv, 4),
                     "triton_tflops": round(tf / (t_tri / 1e3), 1), "torch_tflops": round(tf / (t_ref / 1e3), 1),
                     "speedup_vs_torch": round(t_ref / t_tri, 3), "max_abs_diff": _max_err(y_tri, y_ref)})
        print(f"{name:44s} triton {t_tri:8.3f} ms {rows[-1]['triton_tflops']:6.1f} TFLOP/s | torch "
              f"{t_ref:8.3f} ms {rows[-1]['torch_tflops']:6.1f} TFLOP/s (conv alone {t_conv:.3f} ms) | "
              f"x{rows[-1]['speedup_vs_torch']:.2f}  max|diff| {rows[-1]['max_abs_diff']:.3g}", flush=True)
    return rows


def bench_generator(precision, n, h, w, reps, device="cuda", timer=cuda_time_ms):
    from srgan_fast.engines.torch_engine import TorchEngine
    from srgan_fast.engines.triton_engine import TritonEngine
    from srgan_fast.model import MACS_PER_LR_PIXEL, Generator, fold_bn

    torch.manual_seed(0)
    g = Generator().eval()
    lr = torch.rand(n, 3, h, w, device=device)
    dtype = DTYPES[precision]
    module = fold_bn(g).to(device, dtype).to(memory_format=torch.channels_last)

    def torch_module():
        with torch.inference_mode():
            return module(lr.to(dtype).contiguous(memory_format=torch.channels_last)).float().contiguous()

    tri_engine = TritonEngine(g, precision=precision, device=device)
    torch_engine = TorchEngine(g, precision=precision, device=device, channels_last=True)
    runs = {"triton engine": lambda: tri_engine(lr),
            "torch engine (autocast, channels_last)": lambda: torch_engine(lr),
            f"torch {precision} module, channels_last": torch_module}
    tflop = 2 * MACS_PER_LR_PIXEL * n * h * w / 1e12
    rows, outputs = [], {}
    for name, fn in runs.items():
        ms = timer(fn, warmup=3, reps=reps)
        outputs[name] = fn()
        rows.append({"path": name, "ms": round(ms, 3), "tflops": round(tflop / (ms / 1e3), 1),
                     "fps": round(1e3 * n / ms, 2)})
    base = min(r["ms"] for r in rows if r["path"] != "triton engine")
    tri = next(r for r in rows if r["path"] == "triton engine")
    for r in rows:
        r["speedup_of_triton"] = round(r["ms"] / tri["ms"], 3)
        r["max_abs_diff_vs_triton"] = _max_err(outputs[r["path"]], outputs["triton engine"])
        print(f"generator {r['path']:42s} {r['ms']:8.3f} ms {r['tflops']:6.1f} TFLOP/s {r['fps']:7.2f} frames/s "
              f"max|diff| vs triton {r['max_abs_diff_vs_triton']:.3g}", flush=True)
    print(f"triton engine vs fastest torch path: x{base / tri['ms']:.2f}")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Fused Triton kernels vs PyTorch (cuDNN) on a CUDA GPU")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp16")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--lr", default="270x480", help="LR frame HxW (270x480 = 1080p output)")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--skip-generator", action="store_true", help="only the per-kernel comparison")
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_kernels: needs CUDA (no GPU visible here), nothing measured. "
              "The kernels' CPU correctness tests: pytest tests/kernels/test_kernels.py")
        return 0
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("bench_kernels: TRITON_INTERPRET is set; unset it to benchmark compiled kernels", file=sys.stderr)
        return 2
    try:
        import triton
    except ImportError:
        print("bench_kernels: triton is not installed (pip install 'srgan_fast[triton]'), nothing measured")
        return 0
    h, w = (int(v) for v in a.lr.lower().split("x"))
    dtype = DTYPES[a.dtype]
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False  # fp32 is compared as fp32 on both sides
    torch.backends.cuda.matmul.allow_tf32 = False
    dev_name = torch.cuda.get_device_name()
    print(f"{dev_name}, torch {torch.__version__}, triton {triton.__version__}, cuDNN "
          f"{torch.backends.cudnn.version()}, {a.dtype}, batch {a.batch}, LR {h}x{w} -> {4 * h}x{4 * w}")
    result = {"device": dev_name, "torch": torch.__version__, "triton": triton.__version__,
              "cudnn": torch.backends.cudnn.version(), "dtype": a.dtype, "batch": a.batch, "lr_hw": [h, w],
              "kernels": bench_kernels(dtype, a.batch, h, w, a.reps)}
    if not a.skip_generator:
        result["generator"] = bench_generator(a.dtype, a.batch, h, w, a.reps)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
