"""``--detail A``: the shipped SRResNet (A = 0) and SRGAN (A = 1) blended weight by weight.

Network interpolation (Wang et al., ESRGAN 2018, section 3.4): ``(1 - A) * SRResNet + A * SRGAN``
trades the GAN's invented texture against pixel fidelity smoothly, without a second network or a
weights file. The two endpoints are the shipped files themselves; a blend in between is made
once, in memory, and kept in the cache under a name holding its content hash
(``<cache>/blends/srgan-detail-0.75-<sha>.safetensors``), so every engine, worker, artifact and
cache key sees an ordinary weights file, and a damaged copy is never used (it is rewritten).
"""
from __future__ import annotations

import argparse
import copy
import math
from pathlib import Path

import torch

from .atomic import write_bytes
from .checkpoints import (DEFAULT_MODEL, blend_file_name, generator_bytes, load_generator, model_weights,
                          state_sha256, stored_state)
from .digest import file_sha256
from .errors import SrganError
from .userdirs import cache_root

# The default detail of --model srgan: the GAN endpoint as shipped, chosen on the evidence in
# the SRGAN model card (the blends trade texture for fidelity; the endpoint shows no grid).
DEFAULT_DETAIL = 1.0
DETAIL_HELP = ("texture vs fidelity of --model srgan: 0 = the SRResNet (highest PSNR, smooth), "
               "1 = the SRGAN (photo-realistic texture), in between a blend of the two")


def check_detail(value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise SrganError(f"--detail must be a number in [0, 1] (0: SRResNet, 1: SRGAN), got {value!r}")
    return round(float(value), 3)  # 1e-3 steps: finer ones look the same and would fill the cache


def parse_detail(text: str) -> float:
    """argparse ``type`` for --detail (an error there is argparse's one line, exit 2)."""
    try:
        return check_detail(float(text))
    except (ValueError, SrganError):
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None


def interpolate(base, adv, alpha: float):
    """``(1 - alpha) * base + alpha * adv``, weight by weight (BatchNorm statistics too; integer
    buffers from ``adv``). The two must share architecture and output mapping."""
    if not 0.0 <= alpha <= 1.0:
        raise SrganError(f"--alpha must be in [0, 1], got {alpha}")
    sa, sb = base.state_dict(), adv.state_dict()
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa) \
            or base.output_mapping != adv.output_mapping:
        raise SrganError("the two generators differ in architecture or output mapping; "
                         "interpolation needs one fine-tuned from the other")
    out = copy.deepcopy(base)
    out.load_state_dict({k: torch.lerp(sa[k].float(), sb[k].float(), alpha).to(sa[k].dtype)
                         if sa[k].is_floating_point() else sb[k] for k in sa})
    return out.eval()


def blend_weights(detail: float) -> Path:
    """The weights file of ``--detail``: the SRResNet at 0, the SRGAN at 1, else the cached blend."""
    detail = check_detail(detail)
    base, adv = model_weights("srresnet"), model_weights("srgan")
    if detail == 0.0:
        return base
    if detail == 1.0:
        return adv
    g = interpolate(load_generator(base), load_generator(adv), detail)
    sha = state_sha256(stored_state(g))
    path = cache_root() / "blends" / blend_file_name(detail, sha)
    if path.is_file() and _stored_sha256(path) == sha:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, generator_bytes(g, extra={"detail": f"{detail:g}", "base_sha256": file_sha256(base),
                                                    "adv_sha256": file_sha256(adv)}))
    except OSError as e:
        raise SrganError(f"cannot write the --detail {detail:g} blend under {path.parent}: "
                         f"{e.strerror or e} (set SRGAN_FAST_CACHE to a writable folder)") from None
    return path


def _stored_sha256(path: Path) -> str | None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return state_sha256({k: f.get_tensor(k) for k in f.keys()})
    except (OSError, SafetensorError, ValueError):
        return None  # damaged: rewritten


def resolve_weights(model: str | None = None, weights=None, detail: float | None = None) -> Path:
    """The weights file of ``--model`` / ``--weights`` / ``--detail``: a file given wins; the srgan
    model (the default) at ``detail`` (default ``DEFAULT_DETAIL``); the srresnet as it is."""
    if detail is not None and weights is not None:
        raise SrganError("--detail blends the two shipped models; it cannot be combined with --weights")
    name = model or DEFAULT_MODEL
    if weights is not None or name != "srgan":
        if detail is not None and name == "srresnet":
            raise SrganError("--detail applies to --model srgan (--detail 0 is the srresnet): "
                             "drop one of the two")
        return model_weights(model, weights)
    return blend_weights(DEFAULT_DETAIL if detail is None else detail)


def add_detail_argument(p) -> None:
    """``--detail`` as every command that takes ``--model`` offers it."""
    p.add_argument("--detail", type=parse_detail, default=None, metavar="A",
                   help=f"{DETAIL_HELP} (default: {DEFAULT_DETAIL:g} with --model srgan)")
