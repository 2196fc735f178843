"""Quality per engine and precision: Set5/Set14 Y-PSNR next to the fp32 PyTorch reference.

``python -m srgan_fast.quality --weights W`` upscales the standard LR inputs of each set with
every engine/precision, measures Y-PSNR against the HR images (MATLAB-style Y, 4-pixel border,
uint8 images, as the SR literature reports), and prints a markdown table with each row's loss
against fp32 PyTorch and its largest output difference from it. INT8 rows are checked against
the 0.3 dB gate; ``--strict`` makes a failed gate the exit status.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ..errors import HelpFormatter, SrganError, cli

DEFAULT_ENGINES = ("torch:fp32", "torch:bf16", "openvino:fp32", "openvino:bf16", "openvino:int8",
                   "onnxruntime:fp32", "onnxruntime:int8")


def load_set(root: Path, name: str):
    """[(name, lr NCHW float, hr uint8 HWC)] from ``root/name`` and its standard ``root/name_LRx4``."""
    from .datasets import load_pairs, to_tensor

    if not (root / f"{name}_LRx4").is_dir():
        raise SrganError(f"{name}: need {root / name} and {root / f'{name}_LRx4'}")
    return [(p.name, to_tensor(p.lr), p.hr) for p in load_pairs(root / name, lr="required")]


def _u8(t: torch.Tensor):
    from .datasets import u8

    return u8(t[0].float().cpu())


def measure(weights, sets: dict, engines_list, out=None, log=print) -> dict:
    """{row name: {set: mean Y-PSNR, ...}} for the references and every engine/precision."""
    from .. import engines as eng
    from ..image import tiling
    from ..checkpoints import load_generator
    from ..image.imresize import imresize
    from .metrics import niqe_y, psnr_y
    from ..model import SCALE

    def mean(values):
        finite = [v for v in values if v == v]  # NIQE is NaN on images too small for it
        return sum(finite) / len(finite) if finite else float("nan")

    g = load_generator(weights).eval()
    results, refs = {}, {}
    rows = {name: {"psnr_y": {}, "niqe": {}} for name in ("bicubic", "torch fp32 (reference)")}
    for set_name, pairs in sets.items():
        scores = {name: ([], []) for name in rows}
        refs[set_name] = []
        for _name, lr, hr in pairs:
            with torch.inference_mode():
                sr = g(lr)
            refs[set_name].append(sr)
            for name, img in (("bicubic", imresize(_u8(lr), float(SCALE))), ("torch fp32 (reference)", _u8(sr))):
                scores[name][0].append(psnr_y(img, hr))
                scores[name][1].append(niqe_y(img))
        for name, (dbs, niqes) in scores.items():
            rows[name]["psnr_y"][set_name], rows[name]["niqe"][set_name] = mean(dbs), mean(niqes)
    results["rows"] = rows
    for spec in engines_list:
        backend, _, precision = spec.partition(":")
        precision = precision or "fp32"
        t0 = time.perf_counter()
        try:
            build = {"out": out, "log": lambda m: None} if backend in eng.ARTIFACT_BACKENDS else {}
            engine = eng.open_engine(backend, precision, weights=weights, **build)
        except (SrganError, ValueError) as e:
            log(f"{spec}: skipped ({e})")
            results["rows"][spec] = {"skipped": str(e)}
            continue
        row = {"backend": backend, "asked": precision, "runs": engine.precision, "psnr_y": {}, "niqe": {},
               "max_abs_vs_fp32": 0.0, "device": engine.device}
        with engine:
            for set_name, pairs in sets.items():
                dbs, niqes = [], []
                for (_name, lr, hr), ref in zip(pairs, refs[set_name]):
                    sr = tiling.upscale(engine, lr, out_device=torch.device("cpu"))
                    row["max_abs_vs_fp32"] = max(row["max_abs_vs_fp32"], float((sr - ref).abs().max()))
                    dbs.append(psnr_y(_u8(sr), hr))
                    niqes.append(niqe_y(_u8(sr)))
                row["psnr_y"][set_name], row["niqe"][set_name] = mean(dbs), mean(niqes)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        results["rows"][f"{backend} {precision}"] = row
        log(f"{backend} {precision} (runs {engine.precision}): "
            + ", ".join(f"{s} {v:.2f} dB" for s, v in row["psnr_y"].items()))
    ref = rows["torch fp32 (reference)"]["psnr_y"]
    for row in results["rows"].values():
        if "psnr_y" in row:
            row["loss_db"] = {s: ref[s] - v for s, v in row["psnr_y"].items()}
    return results


def markdown(results: dict, sets) -> str:
    head = "| engine | precision asked | runs | " + " | ".join(
        f"{s} Y-PSNR (dB) | {s} Δ vs fp32 | {s} NIQE" for s in sets) + " | max abs diff vs fp32 torch |"
    lines = [head, "|" + "---|" * (3 + 3 * len(sets) + 1)]
    for name, row in results["rows"].items():
        if "skipped" in row:
            lines.append(f"| {name} | | skipped: {row['skipped']} |" + " |" * (3 * len(sets) + 1))
            continue
        asked = row.get("asked", "fp32" if "torch fp32" in name else "-")
        runs = row.get("runs", asked)
        label = f"{row['backend']}" if "backend" in row else name
        cells = []
        for s in sets:
            cells.append(f"{row['psnr_y'][s]:.2f}")
            cells.append(f"{-row['loss_db'][s]:+.3f}" if name != "torch fp32 (reference)" else "0")
            cells.append(f"{row['niqe'][s]:.2f}")
        diff = f"{row['max_abs_vs_fp32']:.3g}" if "max_abs_vs_fp32" in row else "-"
        lines.append(f"| {label} | {asked} | {runs} | " + " | ".join(cells) + f" | {diff} |")
    return "\n".join(lines)


def parse_args(argv):
    from .gate import INT8_GATE_DB
    from ..checkpoints import DEFAULT_MODEL, MODELS

    p = argparse.ArgumentParser(prog="python -m srgan_fast.quality", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--model", choices=tuple(MODELS), default=None,
                   help=f"shipped generator to measure (default: {DEFAULT_MODEL}; --weights overrides)")
    p.add_argument("--weights", default=None, help="generator weights file (default: the --model weights)")
    p.add_argument("--data", default=None,
                   help="folder holding Set5, Set5_LRx4, Set14, Set14_LRx4 (default: $SRGAN_FAST_DATA, "
                        "else ../shared/data/sr beside the repository)")
    p.add_argument("--sets", nargs="+", default=["Set5", "Set14"],
                   help="datasets under --data to measure, each with its NAME_LRx4 folder of standard LR inputs")
    p.add_argument("--engines", default=",".join(DEFAULT_ENGINES), help="comma-separated backend:precision list")
    p.add_argument("--out", default=None, help="artifact cache folder for the built engines")
    p.add_argument("--markdown", default=None, help="also write the table to this file")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    p.add_argument("--strict", action="store_true",
                   help=f"exit 1 when an INT8 row loses more than {INT8_GATE_DB} dB")
    return p.parse_args(argv)


@cli
def main(argv=None) -> int:
    from ..atomic import write_json, write_text
    from .gate import INT8_GATE_DB
    from ..detail import resolve_weights
    from .datasets import data_root

    args = parse_args(argv)
    root = Path(args.data) if args.data else data_root()
    if root is None:
        raise SrganError("no Set5/Set14 found: pass --data DIR (with Set5, Set5_LRx4, Set14, Set14_LRx4) "
                         "or set SRGAN_FAST_DATA")
    weights = resolve_weights(args.model, args.weights)
    sets = {name: load_set(root, name) for name in args.sets}
    results = measure(weights, sets, [e for e in args.engines.split(",") if e], out=args.out,
                      log=lambda m: print(m, file=sys.stderr))
    table = markdown(results, list(sets))
    print(table)
    failed = [name for name, row in results["rows"].items()
              if row.get("runs") == "int8" and any(v > INT8_GATE_DB for v in row["loss_db"].values())]
    for name in failed:
        print(f"INT8 GATE: {name} loses more than {INT8_GATE_DB} dB against fp32", file=sys.stderr)
    if args.markdown:
        write_text(args.markdown, table + "\n")
    if args.json:
        from .evaluate import json_safe

        write_json(args.json, json_safe(results))
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
