"""Validation during training: Y-PSNR, texture, NIQE and the grid amplitude on held-out photos.

Y-PSNR alone rewards the blur adversarial training removes, and NIQE alone rewards a grid locked
to the output pixels (a GAN's typical artefact): checkpoints are judged by all four, and the grid
amplitude is compared with the HR photos' own (``reference``), measured once.
"""
from __future__ import annotations

import numpy as np
import torch

from ..eval.metrics import grid_amplitude, niqe_y, psnr_y, texture_ratio
from ..image.pixels import to_uint8


def scores(sr_u8: np.ndarray, hr_u8: np.ndarray) -> dict:
    return {"psnr_y": psnr_y(sr_u8, hr_u8), "texture": texture_ratio(sr_u8, hr_u8),
            "niqe": niqe_y(sr_u8), "grid": grid_amplitude(sr_u8)}


def summarize(rows: list[dict]) -> dict:
    """Means; photos too small for NIQE or the grid amplitude (NaN) are left out of those two."""
    out = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr_y", "texture")}
    for k in ("niqe", "grid"):
        finite = [r[k] for r in rows if np.isfinite(r[k])]
        out[k] = float(np.mean(finite)) if finite else np.nan
    return {k: round(v, 4) for k, v in out.items()}


def reference(pairs) -> dict:
    """The HR photos' own NIQE and grid amplitude: what a perfect model would score."""
    hrs = [hr.permute(1, 2, 0).numpy() for _, hr in pairs]
    return summarize([{"psnr_y": np.inf, "texture": 1.0, "niqe": niqe_y(h), "grid": grid_amplitude(h)} for h in hrs])


def validate(g, pairs, device, autocast) -> dict:
    """Scores of generator ``g`` on [(lr uint8 CHW, hr uint8 CHW)], summarized."""
    was_training = g.training
    g.eval()
    rows = []
    with torch.no_grad(), autocast():
        for lr, hr in pairs:
            sr = g(lr[None].float().div(255).to(device)).float()[0].cpu()
            rows.append(scores(to_uint8(sr).permute(1, 2, 0).numpy(), hr.permute(1, 2, 0).numpy()))
    g.train(was_training)
    return summarize(rows)
