"""Parity and tiling checks of one opened engine, judged by the one tolerance table (``parity``).

- parity: the engine's output on the shipped crops (odd sizes) against the fp32 PyTorch
  reference (the unfolded generator in eval mode): max and mean |diff|, worst index, NaN/inf
  counts, PSNR; ok when every crop is inside the tolerance of the precision that runs and above
  that precision's PSNR floor (``parity.MIN_PSNR``).
- tiling: the frame upscaled in tiles (``image.tiling``, overlapping by the receptive-field
  radius) against the same engine on the whole frame: exact up to summation order, so within the
  same tolerance.
"""
from __future__ import annotations

import torch

from srgan_fast.parity import MIN_PSNR, compare


def _report(actual: torch.Tensor, expected: torch.Tensor, runs: str) -> dict:
    r = compare(actual, expected, runs)
    return {"max_abs": r.max_abs, "mean_abs": r.mean_abs, "psnr_db": r.psnr_db, "worst_index": list(r.worst_index),
            "worst_actual": r.worst_actual, "worst_expected": r.worst_expected, "nan": r.nan, "inf": r.inf,
            "atol": r.atol, "rtol": r.rtol, "within_tolerance": r.ok}


def parity_check(engine, crops: list[tuple[str, torch.Tensor]], references: list[torch.Tensor], runs: str) -> dict:
    """One report over the crops: the worst crop's figures, and ok only if every crop passes."""
    floor = MIN_PSNR.get(runs, 0.0)
    per_crop = []
    for (label, x), ref in zip(crops, references):
        rep = _report(engine(x).float().cpu(), ref, runs)
        rep["crop"] = label
        rep["ok"] = rep["within_tolerance"] and rep["psnr_db"] >= floor
        per_crop.append(rep)
    worst = max(per_crop, key=lambda r: (not r["ok"], r["max_abs"]))
    return {"status": "ok" if all(r["ok"] for r in per_crop) else "FAIL", "precision": runs,
            "min_psnr_db": floor, "worst": worst, "crops": per_crop,
            "mean_abs": max(r["mean_abs"] for r in per_crop),
            "nan": sum(r["nan"] for r in per_crop), "inf": sum(r["inf"] for r in per_crop)}


def tiling_check(engine, frame: torch.Tensor, tile: int, runs: str) -> dict:
    from srgan_fast.image.tiling import tiles, upscale

    whole = engine(frame).float().cpu()
    tiled = upscale(engine, frame, tile=tile, out_device=torch.device("cpu")).float()
    rep = _report(tiled, whole, runs)
    h, w = frame.shape[-2:]
    return {"status": "ok" if rep["within_tolerance"] else "FAIL", "detail": None, "frame": [h, w], "tile": tile,
            "tiles": len(list(tiles(h, w, tile, engine.radius))), "radius": engine.radius, **rep}


TILING_FIELDS = ("frame", "tile", "tiles", "radius", "max_abs", "mean_abs", "psnr_db", "worst_index", "worst_actual",
                 "worst_expected", "nan", "inf", "atol", "rtol", "within_tolerance")


def tiling_skipped(why: str) -> dict:
    """A tiling check that did not run: the same fields, empty, and why."""
    return {"status": "skip", "detail": why, **dict.fromkeys(TILING_FIELDS)}
