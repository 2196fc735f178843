"""``python -m bench.interp_sweep BASE ADV``: choose the network-interpolation share of ADV.

For each alpha, the blend ``(1 - alpha) * BASE + alpha * ADV`` is scored on the validation set
(Set5, the trainer's) and the test set (Set14): Y-PSNR, texture ratio and checkerboard excess
(metrics.checker_excess). The rule: the largest alpha that loses at most ``--max-psnr-drop`` dB
of validation Y-PSNR against alpha 0 and whose validation checkerboard excess stays at or under
``--max-excess``. The fidelity bound matters: the excess only sees period-2 patterns, and a GAN
can also invent coarser hatching it does not measure. The test set only reports. ``--out``
writes the chosen blend.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from srgan_fast.errors import HelpFormatter, SrganError, cli


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench.interp_sweep", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("base", help="the MSE-trained generator (alpha 0)")
    p.add_argument("adv", help="the adversarially fine-tuned generator (alpha 1)")
    p.add_argument("--alphas", default="0,0.2,0.25,0.3,0.35,0.4,0.5,1", help="comma-separated")
    p.add_argument("--max-excess", type=float, default=1.05, help="largest validation checkerboard excess")
    p.add_argument("--max-psnr-drop", type=float, default=0.25,
                   help="largest validation Y-PSNR loss against alpha 0, dB")
    p.add_argument("--val", default="Set5", help="dataset under the data root that picks alpha")
    p.add_argument("--test", default="Set14", help="dataset under the data root that only reports")
    p.add_argument("--out", help="write the chosen blend here (fp16 safetensors)")
    return p.parse_args(argv)


def score(g, pairs) -> dict:
    from srgan_fast.eval.datasets import to_tensor
    from srgan_fast.image.read import to_uint8
    from srgan_fast.eval.metrics import checker_excess, psnr_y, texture_ratio

    rows = []
    with torch.inference_mode():
        for p in pairs:
            sr = to_uint8(g(to_tensor(p.lr))[0]).permute(1, 2, 0).numpy()
            rows.append((psnr_y(sr, p.hr), texture_ratio(sr, p.hr), checker_excess(sr, p.hr)))
    a = np.array(rows)
    return {"psnr_y": float(a[:, 0].mean()), "texture": float(a[:, 1].mean()), "excess": float(a[:, 2].mean())}


@cli
def main(argv=None) -> int:
    from srgan_fast.checkpoints import load_generator, save_generator
    from srgan_fast.eval.datasets import dataset, load_pairs
    from srgan_fast.train.interpolate import interpolate

    args = parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    sets = {}
    for role, name in (("val", args.val), ("test", args.test)):
        folder = dataset(name)
        if folder is None:
            raise SrganError(f"dataset {name} not found under the data root (set SRGAN_FAST_DATA)")
        sets[role] = load_pairs(folder, lr="required")
    base, adv = load_generator(args.base), load_generator(args.adv)
    results = []
    print("| alpha | val Y-PSNR | val texture | val excess | test Y-PSNR | test texture | test excess |")
    print("|---|---|---|---|---|---|---|")
    for alpha in (float(a) for a in args.alphas.split(",")):
        g = interpolate(base, adv, alpha)
        v, t = score(g, sets["val"]), score(g, sets["test"])
        results.append((alpha, v, t))
        print(f"| {alpha:g} | {v['psnr_y']:.2f} | {v['texture']:.3f} | {v['excess']:.3f} | "
              f"{t['psnr_y']:.2f} | {t['texture']:.3f} | {t['excess']:.3f} |", flush=True)
    base_db = score(base.eval(), sets["val"])["psnr_y"]
    ok = [a for a, v, _ in results
          if v["excess"] <= args.max_excess and base_db - v["psnr_y"] <= args.max_psnr_drop]
    if not ok:
        raise SrganError(f"no alpha keeps {args.val} within {args.max_psnr_drop} dB of alpha 0 and its "
                         f"checkerboard excess under {args.max_excess}")
    chosen = max(ok)
    print(f"chosen alpha {chosen:g} (largest with {args.val} Y-PSNR within {args.max_psnr_drop} dB of "
          f"alpha 0 ({base_db:.2f} dB) and checkerboard excess <= {args.max_excess})")
    if args.out:
        save_generator(interpolate(base, adv, chosen), args.out,
                       extra={"interpolation": f"alpha {chosen:g} of {args.adv} over {args.base}"})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
