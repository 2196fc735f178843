"""The INT8 quality gate: Y-PSNR of the INT8 engine against HR, next to the fp32 reference.

An INT8 build that loses more than ``INT8_GATE_DB`` against fp32 on Set5/Set14 (or, without the
shared data, on the --calib or synthetic images) is reported loudly, and refused with --strict.
"""
from __future__ import annotations

INT8_GATE_DB = 0.3


def describe_gate(gate: dict) -> str:
    parts = [f"{name}: fp32 {s['fp32_db']:.2f} dB, int8 {s['int8_db']:.2f} dB, loss {s['loss_db']:+.3f} dB"
             for name, s in gate["sets"].items()]
    state = "ok" if gate["ok"] else f"OVER the {gate['limit_db']} dB limit"
    return f"{state}: " + "; ".join(parts) + f" (Y-PSNR vs HR, {gate['source']})"


def int8_gate(engine, generator, calib=None) -> dict:
    """Mean Y-PSNR (vs HR) of the INT8 engine and of the fp32 PyTorch reference, per set."""
    import torch

    from ..image import tiling
    from .datasets import gate_sets, to_tensor, u8
    from .metrics import psnr_y

    sets, source = gate_sets(calib)
    g = generator.eval().float()
    out = {"limit_db": INT8_GATE_DB, "source": source, "sets": {}}
    for name, pairs in sets.items():
        ref_db, q_db = [], []
        for pair in pairs:
            lr = to_tensor(pair.lr)
            with torch.inference_mode():
                ref = g(lr)
            q = tiling.upscale(engine, lr, out_device=torch.device("cpu"))
            ref_db.append(psnr_y(u8(ref[0]), pair.hr))
            q_db.append(psnr_y(u8(q[0]), pair.hr))
        fp32, int8 = sum(ref_db) / len(ref_db), sum(q_db) / len(q_db)
        out["sets"][name] = {"images": len(pairs), "fp32_db": fp32, "int8_db": int8, "loss_db": fp32 - int8,
                             "worst_image_loss_db": max(r - q for r, q in zip(ref_db, q_db))}
    out["ok"] = all(s["loss_db"] <= INT8_GATE_DB for s in out["sets"].values())
    return out
