"""``python -m bench.flicker``: how much each model's output flickers on video-like input.

A static scene filmed twice differs only by sensor and compression noise. Each held-out LR image
is repeated as ``--frames`` frames with independent Gaussian noise (``--sigma`` in 8-bit levels)
and upscaled; flicker is the mean absolute Y difference between consecutive output frames (4-px
border cropped), relative to bicubic's on the same frames. Detail a model invents from noise
changes from frame to frame: on a video it shimmers even where the picture stands still.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from srgan_fast.errors import HelpFormatter, SrganError, cli


def parse_args(argv):
    from srgan_fast.checkpoints import MODELS

    p = argparse.ArgumentParser(prog="python -m bench.flicker", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--sets", default="Set5,Set14", help="datasets under the data root")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated shipped models")
    p.add_argument("--frames", type=int, default=3, help="noisy copies of each image")
    p.add_argument("--sigma", type=float, default=2.0, help="noise standard deviation, 8-bit levels")
    return p.parse_args(argv)


def flicker(frames_u8: list[np.ndarray]) -> float:
    from srgan_fast.eval.metrics import _crop, _y

    ys = [_crop(_y(f), 4) for f in frames_u8]
    return float(np.mean([np.abs(a - b).mean() for a, b in zip(ys, ys[1:])]))


def measure(pairs, models: dict, frames: int, sigma: float) -> dict:
    from srgan_fast.image.read import to_uint8
    from srgan_fast.image.imresize import imresize

    gen = torch.Generator().manual_seed(0)
    scores = {name: [] for name in ["bicubic", *models]}
    for p in pairs:
        lr = torch.from_numpy(p.lr).permute(2, 0, 1).float()
        noisy = [(lr + sigma * torch.randn(lr.shape, generator=gen)).clamp(0, 255).round() / 255
                 for _ in range(frames)]
        outs = {"bicubic": [imresize(to_uint8(x).permute(1, 2, 0).numpy(), 4) for x in noisy]}
        with torch.inference_mode():
            for name, g in models.items():
                outs[name] = [to_uint8(g(x[None])[0]).permute(1, 2, 0).numpy() for x in noisy]
        base = flicker(outs["bicubic"])
        for name, o in outs.items():
            scores[name].append(flicker(o) / base)
    return {name: float(np.mean(v)) for name, v in scores.items()}


@cli
def main(argv=None) -> int:
    from srgan_fast.checkpoints import load_generator, model_weights
    from srgan_fast.eval.datasets import dataset, load_pairs

    args = parse_args(argv)
    if args.frames < 2:
        raise SrganError("--frames must be at least 2")
    models = {m: load_generator(model_weights(m)).eval() for m in args.models.split(",") if m}
    print(f"flicker relative to bicubic ({args.frames} frames, noise sigma {args.sigma:g} levels)")
    for name in args.sets.split(","):
        folder = dataset(name)
        if folder is None:
            raise SrganError(f"dataset {name} not found under the data root (set SRGAN_FAST_DATA)")
        res = measure(load_pairs(folder, lr="required"), models, args.frames, args.sigma)
        print(f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in res.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
