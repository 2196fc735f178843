"""How close an engine or kernel is to the PyTorch reference: one tolerance table, one report.

Tolerances are on [0, 1] images (engines) or raw activations (kernels), keyed by the precision
that ran. A report names the worst element and counts NaN/inf, so a failure says where and how.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

# (atol, rtol) per precision. fp32 differences come from summation order only; fp16/bf16 keep
# 11/8 mantissa bits over a 16-block residual chain; int8 is judged mainly by PSNR (below).
TOLERANCES = {
    "fp32": (1e-4, 1e-4),
    "fp16": (2e-2, 1e-2),
    "bf16": (6e-2, 2e-2),
    "int8": (2.5e-1, 0.0),
}
# Minimum PSNR (dB) of an engine's [0, 1] output against the fp32 reference on real images.
MIN_PSNR = {"fp32": 60.0, "fp16": 40.0, "bf16": 35.0, "int8": 30.0}


@dataclass
class ParityReport:
    precision: str
    max_abs: float
    mean_abs: float
    psnr_db: float
    worst_index: tuple
    worst_actual: float
    worst_expected: float
    nan: int
    inf: int
    atol: float
    rtol: float
    ok: bool

    def summary(self) -> str:
        state = "ok" if self.ok else "FAIL"
        return (f"{state}: max|err| {self.max_abs:.3g} at {self.worst_index} "
                f"(got {self.worst_actual:.6g}, want {self.worst_expected:.6g}), mean {self.mean_abs:.3g}, "
                f"PSNR {self.psnr_db:.2f} dB, NaN {self.nan}, inf {self.inf}, "
                f"tolerance atol {self.atol:g} rtol {self.rtol:g} ({self.precision})")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["worst_index"] = list(self.worst_index)
        return d


def compare(actual: torch.Tensor, expected: torch.Tensor, precision: str = "fp32",
            atol: float | None = None, rtol: float | None = None, data_range: float = 1.0) -> ParityReport:
    """Compare two tensors of the same shape; ``ok`` applies the table (or the given atol/rtol)."""
    if actual.shape != expected.shape:
        raise AssertionError(f"shape mismatch: got {tuple(actual.shape)}, want {tuple(expected.shape)}")
    t_atol, t_rtol = TOLERANCES[precision]
    atol = t_atol if atol is None else atol
    rtol = t_rtol if rtol is None else rtol
    a = actual.detach().double().cpu()
    e = expected.detach().double().cpu()
    nan, inf = int(torch.isnan(a).sum()), int(torch.isinf(a).sum())
    err = (a - e).abs()
    err = torch.where(torch.isfinite(err), err, torch.full_like(err, math.inf))
    flat = int(torch.argmax(err)) if err.numel() else 0
    idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), a.shape)) if a.numel() else ()
    max_abs = float(err.max()) if err.numel() else 0.0
    mse = float(((a - e) ** 2).mean()) if err.numel() else 0.0
    psnr = math.inf if mse == 0 else (10 * math.log10(data_range ** 2 / mse) if math.isfinite(mse) else -math.inf)
    ok = nan == 0 and inf == 0 and bool((err <= atol + rtol * e.abs()).all())
    return ParityReport(precision=precision, max_abs=max_abs, mean_abs=float(err.mean()) if err.numel() else 0.0,
                        psnr_db=psnr, worst_index=idx,
                        worst_actual=float(a.flatten()[flat]) if a.numel() else 0.0,
                        worst_expected=float(e.flatten()[flat]) if a.numel() else 0.0,
                        nan=nan, inf=inf, atol=atol, rtol=rtol, ok=ok)


def assert_close(actual, expected, precision: str = "fp32", **kw) -> ParityReport:
    """Raise AssertionError with the full report when ``actual`` is out of tolerance."""
    report = compare(actual, expected, precision, **kw)
    if not report.ok:
        raise AssertionError(report.summary())
    return report
