"""``python -m srgan_fast.build``: the command line of the build, and its report."""
from __future__ import annotations

import argparse
import sys

from ..errors import HelpFormatter, cli
from ..precision import AUTO_HELP, CHOICES, DEFAULT_PRECISION

DESCRIPTION = "Build an inference artifact: ``python -m srgan_fast.build --precision fp16``."


def parse_args(argv):
    from ..checkpoints import DEFAULT_MODEL, MODELS
    from ..eval.gate import INT8_GATE_DB

    p = argparse.ArgumentParser(prog="python -m srgan_fast.build", description=DESCRIPTION,
                                formatter_class=HelpFormatter)
    p.add_argument("--precision", choices=CHOICES, default=DEFAULT_PRECISION,
                   help=f"precision to build. {AUTO_HELP}")
    p.add_argument("--target", choices=("auto", "tensorrt", "openvino", "onnxruntime"), default="auto",
                   help="auto: TensorRT with a CUDA GPU and tensorrt installed, else OpenVINO on the CPU")
    p.add_argument("--model", choices=tuple(MODELS), default=None,
                   help=f"shipped generator to build (default: {DEFAULT_MODEL}; --weights overrides)")
    p.add_argument("--weights", default=None, help="generator weights file (default: the --model weights)")
    from ..detail import add_detail_argument
    add_detail_argument(p)
    p.add_argument("--calib", default=None, metavar="DIR",
                   help="folder of your own LR images for INT8 calibration and the fp16 range check "
                        "(fp16 and int8 builds only; default: BSD200 from the shared data, else synthetic)")
    p.add_argument("--shapes", default=None, metavar="MIN:OPT:MAX",
                   help="input sizes NxHxW (or HxW) in LR pixels, e.g. 1x64x64:1x270x480:1x544x960 "
                        "(default: video sizes up to 544x960)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="artifact cache folder (default: $SRGAN_FAST_CACHE or ~/.cache/srgan_fast)")
    p.add_argument("--device", default=None, help="cuda:N for TensorRT / ONNX Runtime CUDA (default cuda:0)")
    p.add_argument("--strict", action="store_true",
                   help=f"refuse (instead of warn) when INT8 loses more than {INT8_GATE_DB} dB Y-PSNR against fp32")
    p.add_argument("--rebuild", action="store_true", help="build even when the cache has this artifact")
    p.add_argument("--json", action="store_true", help="print the sidecar JSON at the end")
    return p.parse_args(argv)


def summary(record) -> str:
    """What was built, for people: target, precision asked and run, model, shapes, checks."""
    from .export import describe_parity
    from ..eval.gate import describe_gate

    sc = record.sidecar
    model = record.model
    lines = [f"artifact  {record.path}",
             f"target    {record.target} on {record.device}",
             f"precision asked {record.precision_requested}, runs {record.precision} ({record.precision_note})",
             f"model     {model.name or 'weights'} sha256 {model.sha256[:16]}… "
             f"({model.path or 'in-memory generator'})",
             f"shapes    {record.shapes}" + ("" if record.shapes_enforced
                                            else " (recorded; this backend takes any size)"),
             f"parity    {describe_parity(sc['parity'])} on {sc['parity_images']}"]
    if sc.get("fp16_safety"):
        fs = sc["fp16_safety"]
        kept = ", ".join(k["node"] for k in fs["kept_fp32"]) or "none"
        lines.append(f"fp16      largest activation {fs['max_abs']:.4g} (limit {fs['limit']:.0f}); "
                     f"kept fp32: {kept}; fp16 graph {describe_parity(fs['parity'])}")
    if sc.get("quality_gate"):
        lines.append(f"int8 gate {describe_gate(sc['quality_gate'])}")
    return "\n".join(lines)


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    from ..eval.gate import INT8_GATE_DB
    from .pipeline import ensure_artifact

    def log(msg):
        print(msg, flush=True)

    record = ensure_artifact(args.weights, args.precision, args.target, shapes=args.shapes, calib=args.calib,
                             out=args.out, device=args.device, strict=args.strict, rebuild=args.rebuild,
                             log=log, model=args.model, detail=args.detail)
    print("built:" if record.built else "already built (cache hit):")
    print(summary(record))
    gate = record.sidecar.get("quality_gate")
    if gate and not gate["ok"]:
        print(f"WARNING: the INT8 artifact loses more than {INT8_GATE_DB} dB against fp32 (see the gate above)",
              file=sys.stderr)
    if args.json:
        import json

        print(json.dumps(record.sidecar, indent=2))
    print(f"use it with: python -m srgan_fast.upscale --engine {record.path} INPUT OUTPUT")
    return 0
