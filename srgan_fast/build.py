"""Build an inference artifact: ``python -m srgan_fast.build --precision fp16``.

Exports the generator to ONNX, makes the fp16 or INT8 variant when asked, compiles it for the
target (TensorRT on an NVIDIA GPU, else OpenVINO on the CPU), checks it against the PyTorch
reference, and writes the artifact with a JSON sidecar into the cache. It prints what was built,
where, the precision asked and the precision that runs, and the parity report. An artifact that
is already in the cache for the same inputs is reused (``--rebuild`` forces a new build).
"""
from __future__ import annotations

import argparse
import sys

from .errors import cli
from .hardware import PRECISIONS


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m srgan_fast.build", description=__doc__.split("\n\n")[0])
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="precision to build (a target that cannot run it says what runs instead)")
    p.add_argument("--target", choices=("auto", "tensorrt", "openvino", "onnxruntime"), default="auto",
                   help="auto: TensorRT with a CUDA GPU and tensorrt installed, else OpenVINO on the CPU")
    p.add_argument("--weights", default=None, help="generator weights (default: the shipped weights)")
    p.add_argument("--calib", default=None, metavar="DIR",
                   help="folder of your own LR images for INT8 calibration and the fp16 range check")
    p.add_argument("--shapes", default=None, metavar="MIN:OPT:MAX",
                   help="input sizes NxHxW (or HxW) in LR pixels, e.g. 1x64x64:1x270x480:1x544x960 "
                        "(default: video sizes up to 544x960)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="artifact cache folder (default: $SRGAN_FAST_CACHE or ~/.cache/srgan_fast)")
    p.add_argument("--device", default=None, help="cuda:N for TensorRT / ONNX Runtime CUDA (default cuda:0)")
    p.add_argument("--strict", action="store_true",
                   help="refuse (instead of warn) when INT8 loses more than 0.3 dB Y-PSNR against fp32")
    p.add_argument("--rebuild", action="store_true", help="build even when the cache has this artifact")
    p.add_argument("--json", action="store_true", help="print the sidecar JSON at the end")
    return p.parse_args(argv)


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    from .artifacts import ensure_artifact

    def log(msg):
        print(msg, flush=True)

    art = ensure_artifact(args.weights, args.precision, args.target, shapes=args.shapes, calib=args.calib,
                          out=args.out, device=args.device, strict=args.strict, rebuild=args.rebuild, log=log)
    print("built:" if art.built else "already built (cache hit):")
    print(art.summary())
    gate = art.sidecar.get("quality_gate")
    if gate and not gate["ok"]:
        print("WARNING: the INT8 artifact loses more than 0.3 dB against fp32 (see the gate above)",
              file=sys.stderr)
    if args.json:
        import json

        print(json.dumps(art.sidecar, indent=2))
    print(f"use it with: python -m srgan_fast.upscale --engine {art.path} INPUT OUTPUT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
