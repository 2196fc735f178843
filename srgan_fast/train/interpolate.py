"""Network interpolation: ``python -m srgan_fast.interpolate BASE ADV --alpha A --out G.safetensors``.

Blends two generators of the same architecture weight by weight, ``(1 - A) * BASE + A * ADV``
(Wang et al., ESRGAN, ECCV-W 2018, section 3.4). With BASE the MSE-trained SRResNet and ADV its
adversarially fine-tuned copy, A trades the GAN's texture against its artefacts (checkerboards,
noise) smoothly, without retraining. BatchNorm running statistics are blended like weights;
integer buffers (batch counters) are taken from ADV.
"""
from __future__ import annotations

import argparse

from ..checkpoints import load_generator, save_generator
from ..detail import interpolate
from ..errors import HelpFormatter, SrganError, cli


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m srgan_fast.interpolate",
                                description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("base", help="generator A = 0 gives (e.g. the SRResNet)")
    p.add_argument("adv", help="generator A = 1 gives (e.g. runs/srgan/generator.safetensors)")
    p.add_argument("--alpha", type=float, required=True, help="share of ADV, in [0, 1]")
    p.add_argument("--out", required=True, help="safetensors file to write (fp16)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p.parse_args(argv)


@cli
def main(argv=None) -> int:
    from pathlib import Path

    args = parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise SrganError(f"{out}: exists (use --overwrite to replace it)")
    g = interpolate(load_generator(args.base), load_generator(args.adv), args.alpha)
    save_generator(g, out, extra={"interpolation": f"{1 - args.alpha:g}*{Path(args.base).name} + "
                                                   f"{args.alpha:g}*{Path(args.adv).name}"})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
