"""Compile the generator's kernels for a GPU architecture without a GPU, and say what came out.

``python -m srgan_fast.kernels.aot_check [--arch 90] [--dtype fp16] [--all-configs]`` compiles
every layer kind of the B=16 generator at the 1080p-output shapes, with the arguments and
specializations the launcher would pass (ints equal to 1 become constants, multiples of 16 get
divisibility hints), down to PTX and a cubin via the ptxas shipped with triton. It reports
shared memory, whether Hopper ``wgmma`` (or ``mma.sync``) tensor-core instructions were emitted,
and the width of the async copies that feed them. This proves the GPU path compiles and has
the intended shape; it measures nothing: speed needs a GPU (bench/bench_kernels.py).

Uses Triton's ahead-of-time entry points (``ASTSource``, ``triton.compile`` with a
``GPUTarget``), as ``triton/tools/compile.py`` does; TRITON_INTERPRET must be unset.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time

import torch

_TT = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def _layers(dtype: torch.dtype, lr_hw=(270, 480), channels: int = 64):
    """(name, kernel args, constexprs, pruned configs) for each distinct layer of the generator."""
    from . import conv2d as C

    h, w = lr_hw
    meta_t = lambda *shape, dt=dtype: torch.empty(shape, device="meta", dtype=dt)  # noqa: E731

    def packed(cin, cout, k, prelu, shuffle=False):
        wt = torch.zeros(cout, cin, k, k)
        return C.pack_conv(wt, torch.zeros(cout), torch.zeros(1) if prelu else None, dtype=dtype, shuffle=shuffle)

    c = channels
    lr = meta_t(1, 3, h, w, dt=torch.float32).permute(0, 2, 3, 1)
    act = meta_t(1, h, w, c)
    up1, up2 = meta_t(1, 2 * h, 2 * w, c), meta_t(1, 4 * h, 4 * w, c)
    out = meta_t(1, 3, 4 * h, 4 * w, dt=torch.float32).permute(0, 2, 3, 1)
    calls = [
        ("head 9x9 3->64 + PReLU", lr, packed(3, c, 9, True), None, None, act),
        ("conv3x3 + PReLU", act, packed(c, c, 3, True), None, None, act),
        ("conv3x3 + residual", act, packed(c, c, 3, False), act, None, act),
        ("conv3x3 64->256 + shuffle + PReLU (x2)", act, packed(c, 4 * c, 3, True, True), None, None, up1),
        ("conv3x3 64->256 + shuffle + PReLU (x4)", up1, packed(c, 4 * c, 3, True, True), None, None, up2),
        ("tail 9x9 64->3 + pm1 map", up2, packed(c, 3, 9, False), None, "pm1", out),
    ]
    for name, x, p, res, out_map, o in calls:
        args, meta = C.kernel_args(x, p, res, out_map, o)
        configs = C._prune([_config(*cfg) for cfg in C._GPU_CONFIGS],
                           dict(zip(C._conv_kernel.arg_names, args)), **meta)
        yield name, args, meta, configs


def _config(bm, bn, warps, stages):
    import triton

    return triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=warps, num_stages=stages)


def compile_one(args, meta, config, arch: int = 90) -> dict:
    """Compile one specialization of the conv kernel for ``sm_<arch>``; return what it emitted."""
    import triton
    from triton.backends.compiler import GPUTarget

    from . import conv2d as C

    kernel = C._conv_kernel
    names = kernel.arg_names
    sig, const, attrs = {}, dict(meta, **config.kwargs), {}
    for name, value in zip(names, args):
        if isinstance(value, torch.Tensor):
            sig[name] = "*" + _TT[value.dtype]
            attrs[(names.index(name),)] = [["tt.divisibility", 16]]  # allocations are 256-aligned
        elif value == 1:
            const[name] = 1  # the JIT specializes ints equal to 1 (unit strides)
        else:
            sig[name] = "i32" if abs(value) < 2 ** 31 else "i64"
            if value % 16 == 0:
                attrs[(names.index(name),)] = [["tt.divisibility", 16]]
    for name in const:
        sig[name] = "constexpr"
    src = triton.compiler.ASTSource(fn=kernel, signature=sig, constexprs=const, attrs=attrs)
    target = GPUTarget("cuda", arch, 32)
    backend = triton.compiler.make_backend(target)
    options = backend.parse_options({"num_warps": config.num_warps, "num_stages": config.num_stages})
    t0 = time.perf_counter()
    compiled = triton.compile(src, target=target, options=options.__dict__)
    ptx = compiled.asm["ptx"]
    copy_sizes = re.findall(r"cp\.async\.c[ag]\.shared\.global[^;]*?,\s*(0x[0-9a-f]+|\d+)\s*[,;]", ptx)
    copies = sorted({int(b, 0) for b in copy_sizes})
    return {"shared_bytes": compiled.metadata.shared,
            "tensor_cores": "wgmma" if "wgmma" in ptx else ("mma.sync" if "mma.sync" in ptx else "none"),
            "cp_async_bytes": copies, "cubin_bytes": len(compiled.asm.get("cubin", b"")),
            "compile_s": round(time.perf_counter() - t0, 2)}


def check(dtype: str = "fp16", arch: int = 90, all_configs: bool = False) -> list[dict]:
    from . import conv2d as C

    if C.INTERPRET:
        raise RuntimeError("TRITON_INTERPRET is set: the kernels were built for the interpreter; unset it")
    rows = []
    for name, args, meta, configs in _layers(DTYPES[dtype]):
        for cfg in configs if all_configs else configs[:1]:
            row = {"layer": name, "dtype": dtype, "arch": f"sm_{arch}",
                   "config": f"{cfg.kwargs['BLOCK_M']}x{cfg.kwargs['BLOCK_N']}x{meta['BLOCK_K']} "
                             f"w{cfg.num_warps} s{cfg.num_stages}"}
            try:
                row.update(compile_one(args, meta, cfg, arch))
            except Exception as e:  # report, keep going: one bad config should not hide the rest
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, default=90, help="compute capability x10 (90: H100)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp16")
    ap.add_argument("--all-configs", action="store_true", help="every autotune config, not only the first")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a = ap.parse_args(argv)
    try:
        rows = check(a.dtype, a.arch, a.all_configs)
    except (RuntimeError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            detail = r.get("error") or (f"smem {r['shared_bytes'] / 1024:.0f} KiB, {r['tensor_cores']}, "
                                        f"cp.async {r['cp_async_bytes']} B, {r['compile_s']} s")
            print(f"{r['layer']:42s} {r['dtype']} {r['arch']} {r['config']:18s} {detail}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
