"""PSNR / SSIM on SR benchmarks as the paper reports them: ``python -m srgan_fast.evaluate --data DIR``.

For each HR folder, LR inputs come from the sibling ``<DIR>_LRx4`` folder when it exists (the
standard MATLAB-made LR images), else they are made with the MATLAB-compatible bicubic
downscale. Scores are on the Y channel (BT.601) of uint8 images with a 4-pixel border crop:
Y-PSNR and SSIM (fidelity), NIQE (naturalness, no reference: lower is more natural), the texture
ratio (fine detail against HR) and the grid amplitude (grey levels of a pattern locked to the
output pixel grid, ``metrics.grid_amplitude``). A row "HR" gives the originals' own NIQE and grid.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .datasets import load_pairs, u8
from ..errors import HelpFormatter, SrganError, cli
from ..image.imresize import imresize
from .metrics import grid_amplitude, niqe_y, psnr_y, ssim_y, texture_ratio
from ..model import SCALE  # the one home of the scale factor

# Ledig et al. 2017, Table 2 (Y-PSNR dB / SSIM), for the table's reference rows.
PAPER = {"Set5": {"bicubic": (28.43, 0.8211), "SRResNet": (32.05, 0.9019), "SRGAN": (29.40, 0.8472)},
         "Set14": {"bicubic": (25.99, 0.7486), "SRResNet": (28.49, 0.8184), "SRGAN": (26.02, 0.7397)}}
BORDER = 4
# SSIM's 7x7 window must fit inside the image after the border crop.
MIN_HR = 2 * BORDER + 7


def check_sizes(pairs) -> None:
    for name, _lr, hr in pairs:
        if min(hr.shape[:2]) < MIN_HR:
            raise SrganError(f"{name}: HR image {hr.shape[1]}x{hr.shape[0]} is too small to score (needs at "
                             f"least {MIN_HR}x{MIN_HR}: SSIM's 7x7 window after the {BORDER}-pixel border crop)")


METRICS = {"psnr_y": psnr_y, "ssim_y": ssim_y, "niqe": lambda sr, hr, b: niqe_y(sr, b),
           "texture_ratio": texture_ratio, "grid": lambda sr, hr, b: grid_amplitude(sr, b)}


def evaluate(pairs, upscaler) -> dict:
    """Mean scores of ``upscaler(lr uint8 HWC) -> sr uint8 HWC`` over ``pairs`` (NIQE and the grid
    over the images large enough for them)."""
    check_sizes(pairs)
    per_image = {}
    for name, lr, hr in pairs:
        sr = upscaler(lr)
        per_image[name] = {k: round(float(f(sr, hr, BORDER)), 5) for k, f in METRICS.items()}
    col = {k: np.array([r[k] for r in per_image.values()]) for k in METRICS}
    out = {k: float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan") for k, v in col.items()}
    return {**out, "images": len(per_image), "per_image": per_image}


def hr_row(pairs) -> dict:
    """The originals' own NIQE and grid amplitude (what a perfect model would score)."""
    return evaluate([(n, hr, hr) for n, _lr, hr in pairs], lambda hr: hr)


def json_safe(obj):
    """NaN/inf (NIQE of an image too small for it, the HR row's PSNR) as null: strict JSON."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    return None if isinstance(obj, float) and not np.isfinite(obj) else obj


def bicubic(lr: np.ndarray) -> np.ndarray:
    return imresize(lr, float(SCALE))


def engine_upscaler(engine, tile=None):
    import torch

    from ..image import tiling
    from .datasets import to_tensor

    def run(lr: np.ndarray) -> np.ndarray:
        sr = tiling.upscale(engine, to_tensor(lr), tile=tile, out_device=torch.device("cpu"))[0]
        return u8(sr)
    return run


def format_table(results: dict, paper_row: str = "SRResNet") -> str:
    lines = ["| dataset | method | Y-PSNR (dB) | SSIM | NIQE | texture ratio | grid | images | paper PSNR / SSIM |",
             "|---|---|---|---|---|---|---|---|---|"]
    for dataset, rows in results.items():
        for method, r in rows.items():
            ref = PAPER.get(dataset, {}).get("bicubic" if method == "bicubic" else paper_row)
            ref_s = f"{ref[0]:.2f} / {ref[1]:.4f}" if ref and method != "HR" else "-"
            fidelity = "- | -" if method == "HR" else f"{r['psnr_y']:.2f} | {r['ssim_y']:.4f}"
            lines.append(f"| {dataset} | {method} | {fidelity} | {r['niqe']:.2f} | "
                         f"{r['texture_ratio']:.3f} | {r['grid']:.3f} | {r['images']} | {ref_s} |")
    return "\n".join(lines)


def parse_args(argv):
    from .. import engines
    from ..checkpoints import DEFAULT_MODEL, MODELS
    from ..precision import PRECISION_HELP, PRECISIONS

    p = argparse.ArgumentParser(prog="python -m srgan_fast.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="HR image folders (e.g. ../shared/data/sr/Set5)")
    p.add_argument("--lr", help="folder of LR inputs (default: <DATA>_LRx4 beside each, else bicubic x1/4)")
    p.add_argument("--model", default=None, metavar="NAME",
                   help=f"shipped generator: {', '.join(MODELS)} (default: {DEFAULT_MODEL}); a weights file "
                        "is still accepted here for old command lines, prefer --weights")
    p.add_argument("--weights", default=None, help="generator weights file (overrides --model)")
    from ..detail import add_detail_argument
    add_detail_argument(p)
    p.add_argument("--bicubic", action="store_true", help="evaluate bicubic upsampling only")
    p.add_argument("--backend", default="auto", choices=("auto", *engines.BACKENDS),
                   help="engine to evaluate (auto: the fastest this machine has)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help=PRECISION_HELP)
    p.add_argument("--json", help="also write the results as JSON to this file")
    return p.parse_args(argv)


def _weights(args):
    """--weights wins; --model takes a shipped name (or, for old command lines, a file)."""
    from ..checkpoints import MODELS
    from ..detail import resolve_weights

    if args.weights is None and args.model is not None and args.model not in MODELS and Path(args.model).is_file():
        return resolve_weights(None, Path(args.model), args.detail)
    return resolve_weights(args.model, args.weights, args.detail)


def _check_output(path) -> None:
    """Refuse an unwritable --json before the work, not after it (a probe file: os.access says
    yes to root under /proc)."""
    import tempfile

    folder = Path(path).parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise SrganError(f"--json {path}: cannot write in {folder} ({e.strerror})") from None


@cli
def main(argv=None):
    from .. import engines
    from ..atomic import write_json
    from ..checkpoints import model_name

    args = parse_args(argv)
    if args.json:
        _check_output(args.json)
    methods, paper_row = {"bicubic": bicubic}, "SRResNet"
    if not args.bicubic:
        weights = _weights(args)
        paper_row = "SRGAN" if (model_name(weights) or "").startswith("srgan") else "SRResNet"
        engine = engines.open_engine(args.backend, args.precision, weights=weights)
        label = f"srgan_fast {model_name(weights) or Path(weights).name}"
        if (engine.name, engine.precision) != ("torch", "fp32"):
            label += f" ({engine.name} {engine.precision})"
        methods[label] = engine_upscaler(engine)
    results = {}
    for folder in map(Path, args.data):
        pairs = load_pairs(folder, Path(args.lr) if args.lr else None)
        check_sizes(pairs)
        results[folder.name] = {"HR": hr_row(pairs)}
        results[folder.name].update({name: evaluate(pairs, fn) for name, fn in methods.items()})
        for name, r in results[folder.name].items():
            print(f"{folder.name:>8} {name:<24} {r['psnr_y']:.2f} dB  SSIM {r['ssim_y']:.4f}  NIQE {r['niqe']:.2f}  "
                  f"texture {r['texture_ratio']:.3f}  grid {r['grid']:.3f}", file=sys.stderr)
    print(format_table(results, paper_row))
    if args.json:
        write_json(args.json, json_safe(results), indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
