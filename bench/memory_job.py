"""Peak memory of one image job above the process baseline, at several image sizes.

    python bench/memory_job.py --sizes 600 1200 --budget 512 [--backend torch] [--weights W] [--ext .png]

Each measurement runs in a fresh subprocess: open the engine and read the input (the baseline),
reset the kernel's peak-RSS mark (/proc/self/clear_refs), run the job (tiles, canvas, encoding,
file write), then read the peak (VmHWM). ``job`` = peak - baseline is what ``--memory-budget``
bounds; it should stay under the budget and roughly flat as the image grows.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def hog_engine():
    """An engine that costs no arithmetic but uses exactly the memory it declares per LR pixel
    (touched, so it is resident): checks the job's own accounting without minutes of convolution."""
    import torch

    from srgan_fast.engines.base import Engine

    class HogEngine(Engine):
        name, radius = "hog", 40

        def _run(self, lr):
            n, _, h, w = lr.shape
            out_bytes = n * 3 * h * w * 16 * 4
            scratch = torch.empty(max(0, n * h * w * self.bytes_per_lr_pixel - out_bytes) // 4)
            scratch[::1024].fill_(1.0)  # one write per 4 KiB page makes it all resident
            del scratch
            return lr.repeat_interleave(4, 2).repeat_interleave(4, 3)
    return HogEngine()


def child(size: int, budget_mib: int, backend: str, weights: str | None, ext: str, precision: str) -> dict:
    import numpy as np
    from PIL import Image

    from srgan_fast import engines
    from srgan_fast.image import job as upscale
    from srgan_fast.image.read import read_image

    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.png", Path(d) / f"out{ext}"
        y, x = np.mgrid[0:size, 0:size]
        arr = np.stack([(x * 7 + y) % 256, (y * 3) % 256, (x ^ y) % 256], -1).astype(np.uint8)
        Image.fromarray(arr).save(src)
        engine = hog_engine() if backend == "hog" else engines.open_engine(backend, precision, weights=weights)
        img = read_image(src)
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark
        base = _status_kib("VmRSS")
        t = time.perf_counter()
        upscale.upscale_file(engine, src, dst, budget=budget_mib << 20, img=img)
        seconds = time.perf_counter() - t
        peak = _status_kib("VmHWM")
        return {"lr": f"{size}x{size}", "out": f"{4 * size}x{4 * size}{ext}", "budget_mib": budget_mib,
                "baseline_mib": round(base / 1024), "job_mib": round((peak - base) / 1024),
                "seconds": round(seconds, 1), "backend": engine.name}


def measure(size: int, budget_mib: int, backend: str = "torch", weights: str | None = None,
            ext: str = ".png", precision: str = "fp32") -> dict:
    cmd = [sys.executable, __file__, "--child", "--sizes", str(size), "--budget", str(budget_mib),
           "--backend", backend, "--ext", ext, "--precision", precision]
    if weights:
        cmd += ["--weights", str(weights)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[600, 1200], help="LR side lengths (default: %(default)s)")
    p.add_argument("--budget", type=int, default=512, help="--memory-budget in MiB (default: %(default)s)")
    p.add_argument("--backend", default="torch",
                   help="engine backend, or hog: no arithmetic, only the declared memory (default: %(default)s)")
    p.add_argument("--precision", default="fp32", help="engine precision (default: %(default)s)")
    p.add_argument("--weights", default=None, help="weights file (default: the shipped model)")
    p.add_argument("--ext", default=".png", help="output format (default: %(default)s)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.sizes[0], args.budget, args.backend, args.weights, args.ext, args.precision)))
        return 0
    for size in args.sizes:
        print(json.dumps(measure(size, args.budget, args.backend, args.weights, args.ext, args.precision)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
