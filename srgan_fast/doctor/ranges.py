"""fp16/bf16 range check: the largest activation of every layer on real pixels, against the
largest value the 16-bit format asked for (or run) can hold.

A layer above fp16's 65504 turns into inf in fp16 storage and the frame goes black (or NaN):
such a model must be reported with the layer's name, not run. Layers are named by their path in
the generator (``blocks.3.conv1``: the first conv of the fourth residual block, BatchNorm folded
in, as every engine runs it). The verdict per row:
- eager backends (torch, triton) have no per-layer fallback: fp16 asked or run with any layer
  over 65504 fails, naming the first such layer (where fp16 is mapped to bf16, on a CPU, the row
  says so: the same request on a GPU stores every layer in fp16);
- artifact backends run the build's fp16 graph, in which the layers whose calibration range
  came near the limit are kept fp32 (``build/fp16.py``, recorded in the sidecar): overflowing
  layers pass when the build kept layers fp32, and fail when it kept none;
- bf16 has fp32's exponent: it fails only on an infinite or NaN activation;
- fp32 and int8 runs: not applicable (INT8 activations are scaled by their quantizers).
``layer_ranges`` is the core's (``fp16_range``), which ``--precision auto`` asks on a GPU too.
"""
from __future__ import annotations

import torch

from srgan_fast.engines import ARTIFACT_BACKENDS
from srgan_fast.fp16_range import layer_ranges  # noqa: F401 - the per-layer ranges live in the core

LIMITS = {"fp16": float(torch.finfo(torch.float16).max), "bf16": float(torch.finfo(torch.bfloat16).max)}


def _formats(asked: str, runs: str) -> list[str]:
    """The 16-bit formats a row's activations are stored in, where it runs or where it was asked for."""
    return [f for f in ("fp16", "bf16") if f in (asked, runs)]


def range_check(ranges: list[tuple[str, float]], backend: str, asked: str, runs: str,
                sidecar: dict | None = None) -> dict:
    """The row's verdict: status ok / FAIL / n/a, the formats checked, the largest activation and
    every layer over a format's limit (first = the first in forward order)."""
    largest = max(ranges, key=lambda r: r[1], default=("", 0.0))
    out = {"status": "n/a", "formats": _formats(asked, runs), "max_abs": largest[1], "max_layer": largest[0],
           "overflow": [], "kept_fp32": [], "detail": ""}
    if not out["formats"]:
        out["detail"] = f"{runs} activations: no 16-bit float storage to overflow"
        return out
    kept = [k["node"] for k in ((sidecar or {}).get("fp16_safety") or {}).get("kept_fp32", [])]
    out["kept_fp32"] = kept
    failures, notes = [], []
    for fmt in out["formats"]:
        over = [(name, v) for name, v in ranges if not v <= LIMITS[fmt]]
        out["overflow"] += [{"layer": name, "max_abs": v, "format": fmt} for name, v in over]
        if not over:
            continue
        first, v = over[0]
        what = f"{first} reaches {v:.3g} > {LIMITS[fmt]:.6g} ({fmt} max)" + (
            f", and {len(over) - 1} more layer{'s' if len(over) > 2 else ''}" if len(over) > 1 else "")
        if fmt == "fp16" and backend in ARTIFACT_BACKENDS:
            if kept:
                notes.append(f"{what}: the build keeps {len(kept)} layer{'s' if len(kept) > 1 else ''} fp32 "
                             f"({', '.join(kept[:4])}{', ...' if len(kept) > 4 else ''})")
                continue
            failures.append(f"{what}, and the build kept no layer fp32")
            continue
        where = "" if runs == fmt else f" (runs {runs} here; {fmt} storage gives inf: black frames)"
        failures.append(what + where)
    if failures:
        out.update(status="FAIL", detail="; ".join(failures + notes))
    else:
        out.update(status="ok", detail="; ".join(notes) or
                   f"largest activation {largest[1]:.3g} ({largest[0]}) fits {' and '.join(out['formats'])}")
    return out
