"""``python -m bench.compare``: a figure of bicubic | SRResNet | SRGAN | HR crops, with numbers.

Each row is one held-out test image (Set5/Set14, standard LR inputs): the crop with the most
fine texture in the HR image (fur, fabric, foliage), upscaled by bicubic and by each generator;
an image named ``SET/NAME:flat`` shows instead its flattest crop with the contrast stretched 4x
around its mean, where a grid locked to the output pixels (a GAN's typical artefact) shows.
Labels give the whole-image Y-PSNR, NIQE and grid amplitude, as the README's evaluation table
reports them, so the picture and the table say the same thing.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from srgan_fast.errors import HelpFormatter, SrganError, cli

DEFAULT_IMAGES = ("Set14/baboon", "Set14/barbara", "Set14/flowers", "Set14/comic", "Set5/butterfly",
                  "Set14/lenna:flat")
FLAT_CONTRAST = 4
OUT = Path(__file__).resolve().parent / "results" / "compare_x4.png"


def parse_args(argv):
    from srgan_fast.checkpoints import MODELS

    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--data", help="dataset root holding Set5, Set5_LRx4, Set14, Set14_LRx4 "
                                  "(default: $SRGAN_FAST_DATA, else ../shared/data/sr)")
    p.add_argument("--images", default=",".join(DEFAULT_IMAGES), help="comma-separated SET/NAME")
    p.add_argument("--models", default=",".join(MODELS),
                   help="comma-separated shipped models, or LABEL=WEIGHTS_FILE for any other generator")
    p.add_argument("--crop", type=int, default=120, help="HR crop size in pixels")
    p.add_argument("--out", default=str(OUT), help="PNG to write")
    return p.parse_args(argv)


def texture_crop(hr_u8: np.ndarray, size: int, flat: bool = False) -> tuple[int, int]:
    """Top-left corner of the ``size`` crop with the most (``flat``: the least) Laplacian energy,
    by a coarse grid search."""
    from srgan_fast.eval.metrics import _y, laplacian

    lap = np.abs(laplacian(_y(hr_u8)))
    h, w = lap.shape
    step = max(8, size // 4)
    sign = -1.0 if flat else 1.0
    best, corner = -np.inf, (0, 0)
    for top in range(0, max(1, h - size), step):
        for left in range(0, max(1, w - size), step):
            e = sign * float(lap[top:top + size, left:left + size].mean())
            if e > best:
                best, corner = e, (top, left)
    return corner


def stretch(crop: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Contrast x FLAT_CONTRAST around the HR crop's mean colour: faint patterns become visible."""
    return np.clip((crop.astype(np.float64) - mean) * FLAT_CONTRAST + 128, 0, 255).astype(np.uint8)


def render(rows: list[dict], columns: list[str], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from srgan_fast.atomic import atomic_output

    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.6 * len(columns), 2.85 * len(rows)),
                             squeeze=False)
    for r, row in enumerate(rows):
        for c, name in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(row["crops"][name], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            s = row["scores"][name]
            label = (f"{name}\nNIQE {s['niqe']:.2f}" if name == "HR" else
                     f"{name}\n{s['psnr_y']:.2f} dB, NIQE {s['niqe']:.2f}, grid {s['grid']:.2f}")
            ax.set_title(label, fontsize=8.5)
            if c == 0:
                ax.set_ylabel(row["name"], fontsize=9)
    fig.suptitle("4x upscaling of held-out images (whole-image Y-PSNR, NIQE: lower is more natural, "
                 f"grid: grey levels locked to the pixel grid; 'flat' rows: contrast x{FLAT_CONTRAST})", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.975))
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png", dpi=72)
    plt.close(fig)


def compare(root: Path, images: list[str], models: list[str], crop: int) -> tuple[list[dict], list[str]]:
    from srgan_fast.checkpoints import load_generator, model_weights
    from srgan_fast.image.read import read_image, to_uint8
    from srgan_fast.image.imresize import imresize
    from srgan_fast.eval.metrics import grid_amplitude, niqe_y, psnr_y

    labels = {"srresnet": "SRResNet", "srgan": "SRGAN"}
    gens = {}
    for m in models:
        label, _, path = m.partition("=")
        gens[labels.get(label, label)] = load_generator(path or model_weights(label)).eval()
    columns = ["bicubic", *gens, "HR"]
    rows = []
    for item in images:
        item, _, mode = item.partition(":")
        set_name, _, stem = item.partition("/")
        hr_path = next((root / set_name).glob(f"{stem}.*"), None)
        lr_path = next((root / f"{set_name}_LRx4").glob(f"{stem}.*"), None)
        if hr_path is None or lr_path is None:
            raise SrganError(f"{item}: not found under {root} (need {set_name}/ and {set_name}_LRx4/)")
        lr = read_image(lr_path).rgb
        h, w = lr.shape[-2:]
        hr = to_uint8(read_image(hr_path).rgb).permute(1, 2, 0).numpy()[: 4 * h, : 4 * w]
        outs = {"bicubic": imresize(to_uint8(lr).permute(1, 2, 0).numpy(), 4)}
        with torch.inference_mode():
            for label, g in gens.items():
                outs[label] = to_uint8(g(lr[None])[0]).permute(1, 2, 0).numpy()
        flat = mode == "flat"
        top, left = texture_crop(hr, crop, flat)
        outs["HR"] = hr
        crops = {k: v[top:top + crop, left:left + crop] for k, v in outs.items()}
        if flat:
            mean = crops["HR"].reshape(-1, 3).mean(0)
            crops = {k: stretch(v, mean) for k, v in crops.items()}
        rows.append({"name": item + (f" (flat, contrast x{FLAT_CONTRAST})" if flat else ""), "crops": crops,
                     "scores": {k: {"psnr_y": psnr_y(v, hr), "niqe": niqe_y(v), "grid": grid_amplitude(v)}
                                for k, v in outs.items()}})
    return rows, columns


@cli
def main(argv=None) -> int:
    from srgan_fast.eval.datasets import default_root

    args = parse_args(argv)
    root = Path(args.data) if args.data else default_root()
    if not root.is_dir():
        raise SrganError(f"{root}: dataset root not found (give --data or set SRGAN_FAST_DATA)")
    rows, columns = compare(root, [s.strip() for s in args.images.split(",") if s.strip()],
                            [m.strip() for m in args.models.split(",") if m.strip()], args.crop)
    render(rows, columns, Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
