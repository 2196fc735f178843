"""``python -m bench.interp_sweep BASE ADV``: choose the network-interpolation share of ADV.

For each alpha, the blend ``(1 - alpha) * BASE + alpha * ADV`` is scored on the validation set
(held-out photos) and the test set (Set14): Y-PSNR, texture ratio, NIQE (lower is more natural)
and the grid amplitude (metrics.grid_amplitude: grey levels of a pattern locked to the 4-pixel
output grid). The rule: the alpha with the lowest validation NIQE among those whose validation
grid amplitude stays at or under ``--max-grid`` times alpha 0's (the MSE model's own residue:
1.5x lets the GAN add half of it again; the old 0.4 blend, whose crosshatch shows in flat areas,
had 3.6x). The test set only reports. ``--out`` writes the chosen blend.
"""
from __future__ import annotations

import argparse

import torch

from srgan_fast.errors import HelpFormatter, SrganError, cli


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench.interp_sweep", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("base", help="the MSE-trained generator (alpha 0)")
    p.add_argument("adv", help="the adversarially fine-tuned generator (alpha 1)")
    p.add_argument("--alphas", default="0,0.2,0.25,0.3,0.35,0.4,0.5,1", help="comma-separated")
    p.add_argument("--max-grid", type=float, default=1.5,
                   help="largest validation grid amplitude, as a multiple of alpha 0's")
    p.add_argument("--val", default="extra/Kodak24", help="held-out photos under the data root that pick alpha")
    p.add_argument("--test", default="Set14", help="dataset under the data root that only reports")
    p.add_argument("--out", help="write the chosen blend here (fp16 safetensors)")
    return p.parse_args(argv)


def score(g, pairs) -> dict:
    from srgan_fast.eval.datasets import to_tensor
    from srgan_fast.image.read import to_uint8
    from srgan_fast.train.validation import scores, summarize

    with torch.inference_mode():
        return summarize([scores(to_uint8(g(to_tensor(p.lr))[0]).permute(1, 2, 0).numpy(), p.hr) for p in pairs])


@cli
def main(argv=None) -> int:
    from srgan_fast.checkpoints import load_generator, save_generator
    from srgan_fast.eval.datasets import dataset, load_pairs
    from srgan_fast.detail import interpolate

    args = parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    sets = {}
    for role, name in (("val", args.val), ("test", args.test)):
        folder = dataset(name)
        if folder is None:
            raise SrganError(f"dataset {name} not found under the data root (set SRGAN_FAST_DATA)")
        sets[role] = load_pairs(folder, lr="required" if role == "test" else "bicubic")
    base, adv = load_generator(args.base), load_generator(args.adv)
    results = []
    from srgan_fast.train.validation import reference

    refs = {role: reference([(None, torch.from_numpy(p.hr).permute(2, 0, 1)) for p in pairs])
            for role, pairs in sets.items()}
    print(f"HR photos: val NIQE {refs['val']['niqe']:.2f} grid {refs['val']['grid']:.3f}; "
          f"test NIQE {refs['test']['niqe']:.2f} grid {refs['test']['grid']:.3f}")
    print("| alpha | val Y-PSNR | val texture | val NIQE | val grid | test Y-PSNR | test texture | test NIQE | test grid |")
    print("|---|---|---|---|---|---|---|---|---|")
    for alpha in (float(a) for a in args.alphas.split(",")):
        g = interpolate(base, adv, alpha).eval()
        v, t = score(g, sets["val"]), score(g, sets["test"])
        results.append((alpha, v, t))
        print(f"| {alpha:g} | {v['psnr_y']:.2f} | {v['texture']:.3f} | {v['niqe']:.2f} | {v['grid']:.3f} | "
              f"{t['psnr_y']:.2f} | {t['texture']:.3f} | {t['niqe']:.2f} | {t['grid']:.3f} |", flush=True)
    bound = args.max_grid * score(base.eval(), sets["val"])["grid"]
    ok = [(v["niqe"], a) for a, v, _ in results if v["grid"] <= bound]
    if not ok:
        raise SrganError(f"no alpha keeps the {args.val} grid amplitude within {args.max_grid}x alpha 0's ({bound:.3f})")
    chosen = min(ok)[1]
    print(f"chosen alpha {chosen:g} (lowest {args.val} NIQE with a grid amplitude <= {bound:.3f}, "
          f"{args.max_grid}x alpha 0's)")
    if args.out:
        save_generator(interpolate(base, adv, chosen), args.out,
                       extra={"interpolation": f"alpha {chosen:g} of {args.adv} over {args.base}"})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
