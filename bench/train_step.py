"""``python -m bench.train_step``: seconds per SRGAN training iteration, GFLOP/s, share of peak.

One iteration of ``python -m srgan_fast.train --phase srgan`` as the shipped run trains (batch
16 of 96x96 crops: G forward and backward, D on real and fake crops, VGG54 on SR with gradient
and on HR without), timed after warm-up steps, on the CPU or a GPU. Its FLOPs are counted by
torch's own ``FlopCounterMode`` on one step (convolutions and matmuls, forward and backward),
so GFLOP/s and the share of the device's measured matmul peak (``doctor.peak``, at the precision
the step computes in) say how much of the machine training uses. Also prints what an hour buys.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from srgan_fast.errors import HelpFormatter, SrganError, cli


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench.train_step", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--data", nargs="+", help="training image folders (default: Set14 from the shared data)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (the shipped run used 1)")
    p.add_argument("--steps", type=int, default=5, help="timed iterations (after 2 warm-up ones)")
    p.add_argument("--batch", type=int, default=16, help="crops per iteration")
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast (default: bf16, as the shipped run)")
    p.add_argument("--json", help="also write the result here")
    return p.parse_args(argv)


def count_flops(trainer) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        trainer.step()
    return float(counter.get_total_flops())


@cli
def main(argv=None) -> int:
    from srgan_fast.checkpoints import MODELS
    from srgan_fast.doctor.peak import measure_peaks
    from srgan_fast.eval.datasets import data_root
    from srgan_fast.train.trainer import Trainer, parse_args as train_args

    args = parse_args(argv)
    data = args.data or ([str(data_root() / "Set14")] if data_root() else None)
    if not data:
        raise SrganError("no training images: pass --data DIR")
    argv_train = ["--phase", "srgan", "--init", str(MODELS["srresnet"]), "--data", *data, "--batch", str(args.batch),
                  "--gan", "ragan", "--pixel-weight", "0.1", "--grid-weight", "30", "--ema", "0.999",
                  "--channels-last", "--device", args.device, "--threads", str(args.threads),
                  "--out", "/nonexistent/not-written", "--no-progress"] + ([] if args.fp32 else ["--bf16"])
    trainer = Trainer(train_args(argv_train))
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    for _ in range(2):
        trainer.step()
    sync()
    flops = count_flops(trainer)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        trainer.step()
        sync()
        times.append(time.perf_counter() - t0)
    sec = sorted(times)[len(times) // 2]
    precision = "fp32" if args.fp32 else "bf16"
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    peak = measure_peaks(args.device, seconds=1.0)[precision]["tflops"]
    gflops = flops / sec / 1e9
    result = {"device": args.device, "threads": args.threads if args.device == "cpu" else None,
              "precision": precision, "batch": args.batch, "crop": 96, "seconds_per_iteration": round(sec, 3),
              "gflop_per_iteration": round(flops / 1e9, 1), "gflop_per_s": round(gflops, 1),
              "peak_tflop_per_s": peak, "share_of_peak": round(gflops / 1e3 / peak, 3) if peak else None,
              "iterations_per_hour": int(3600 / sec)}
    print(json.dumps(result, indent=1))
    if args.json:
        from srgan_fast.atomic import write_text
        write_text(args.json, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
