"""PSNR / SSIM on SR benchmarks as the paper reports them: ``python -m srgan_fast.evaluate --data DIR``.

For each HR folder, LR inputs come from the sibling ``<DIR>_LRx4`` folder when it exists (the
standard MATLAB-made LR images), else they are made with the MATLAB-compatible bicubic
downscale. Scores are on the Y channel (BT.601) of uint8 images with a 4-pixel border crop.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .errors import SrganError, cli
from .imageio import list_images, read_image, to_uint8
from .imresize import imresize, modcrop
from .metrics import psnr_y, ssim_y

from .model import SCALE  # noqa: E402 - the one home of the scale factor
# Ledig et al. 2017, Table 2 (Y-PSNR dB / SSIM), for the table's reference rows.
PAPER = {"Set5": {"bicubic": (28.43, 0.8211), "SRResNet": (32.05, 0.9019), "SRGAN": (29.40, 0.8472)},
         "Set14": {"bicubic": (25.99, 0.7486), "SRResNet": (28.49, 0.8184), "SRGAN": (26.02, 0.7397)}}


def _u8(img) -> np.ndarray:
    return to_uint8(img.rgb).permute(1, 2, 0).numpy()


def load_pairs(hr_dir: Path, lr_dir: Path | None = None):
    """[(name, lr uint8 HWC, hr uint8 HWC)] with HR cropped to a multiple of 4."""
    if not hr_dir.is_dir():
        raise SrganError(f"{hr_dir}: not a folder")
    lr_dir = lr_dir or hr_dir.with_name(hr_dir.name + "_LRx4")
    pairs = []
    for f in list_images(hr_dir):
        hr = modcrop(_u8(read_image(f)), SCALE)
        lr_file = lr_dir / f.name
        if lr_file.is_file():
            lr = _u8(read_image(lr_file))
            if lr.shape[0] * SCALE != hr.shape[0] or lr.shape[1] * SCALE != hr.shape[1]:
                raise SrganError(f"{lr_file}: {lr.shape[1]}x{lr.shape[0]} is not the 1/4 of {f}")
        else:
            lr = imresize(hr, 1 / SCALE)
        pairs.append((f.stem, lr, hr))
    if not pairs:
        raise SrganError(f"{hr_dir}: no images")
    return pairs


def evaluate(pairs, upscaler) -> dict:
    """Mean Y-PSNR/SSIM of ``upscaler(lr uint8 HWC) -> sr uint8 HWC`` over ``pairs``."""
    per_image = {}
    for name, lr, hr in pairs:
        sr = upscaler(lr)
        per_image[name] = (psnr_y(sr, hr), ssim_y(sr, hr))
    psnrs, ssims = zip(*per_image.values())
    return {"psnr_y": float(np.mean(psnrs)), "ssim_y": float(np.mean(ssims)), "images": len(per_image),
            "per_image": {k: {"psnr_y": round(p, 4), "ssim_y": round(s, 5)} for k, (p, s) in per_image.items()}}


def bicubic(lr: np.ndarray) -> np.ndarray:
    return imresize(lr, float(SCALE))


def engine_upscaler(engine, tile=None):
    import torch

    from . import tiling

    def run(lr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(lr).permute(2, 0, 1)[None].float().div(255)
        sr = tiling.upscale(engine, x, tile=tile, out_device=torch.device("cpu"))[0]
        return to_uint8(sr).permute(1, 2, 0).numpy()
    return run


def format_table(results: dict) -> str:
    lines = ["| dataset | method | Y-PSNR (dB) | SSIM | images | paper PSNR / SSIM |",
             "|---|---|---|---|---|---|"]
    for dataset, rows in results.items():
        for method, r in rows.items():
            ref = PAPER.get(dataset, {}).get("bicubic" if method == "bicubic" else "SRResNet")
            ref_s = f"{ref[0]:.2f} / {ref[1]:.4f}" if ref else "-"
            lines.append(f"| {dataset} | {method} | {r['psnr_y']:.2f} | {r['ssim_y']:.4f} | {r['images']} | {ref_s} |")
    return "\n".join(lines)


@cli
def main(argv=None):
    from . import engines

    p = argparse.ArgumentParser(prog="python -m srgan_fast.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", required=True, help="HR image folders (e.g. ../shared/data/sr/Set5)")
    p.add_argument("--lr", help="folder of LR inputs (default: <DATA>_LRx4 beside each, else bicubic x1/4)")
    p.add_argument("--model", help="generator weights (default: the shipped model)")
    p.add_argument("--bicubic", action="store_true", help="evaluate bicubic upsampling only")
    p.add_argument("--backend", default="torch", choices=engines.BACKENDS)
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16", "int8"))
    p.add_argument("--json", help="also write the results as JSON to this file")
    args = p.parse_args(argv)

    methods = {"bicubic": bicubic}
    if not args.bicubic:
        engine = engines.open_engine(args.backend, args.precision, weights=args.model)
        label = "srgan_fast" if args.backend == "torch" and args.precision == "fp32" else \
            f"srgan_fast {engine.name} {engine.precision}"
        methods[label] = engine_upscaler(engine)
    results = {}
    for folder in args.data:
        folder = Path(folder)
        pairs = load_pairs(folder, Path(args.lr) if args.lr else None)
        results[folder.name] = {name: evaluate(pairs, fn) for name, fn in methods.items()}
        for name, r in results[folder.name].items():
            print(f"{folder.name:>8} {name:<24} {r['psnr_y']:.2f} dB  SSIM {r['ssim_y']:.4f}", file=sys.stderr)
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
