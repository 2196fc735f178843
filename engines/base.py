"""The one interface every inference backend implements.

An engine maps a batch of LR images to SR images: ``engine(lr) -> sr``, both float32 NCHW RGB
in [0, 1]; ``sr`` is 4x larger. Inputs may live on any device; the engine moves them to
``engine.torch_device`` and returns its output there, so a GPU pipeline can keep frames on the
GPU and a CPU pipeline never copies. Anything backend-specific (layouts, dtypes, buffers,
compiled graphs) stays inside the backend's module.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from srgan_fast.model import SCALE  # noqa: F401 - re-exported: the one home of the scale factor


@dataclass(frozen=True)
class ShapeRange:
    """Input sizes (LR pixels) an engine accepts; ``None`` for a bound means unbounded."""

    min_hw: tuple[int, int] = (1, 1)
    max_hw: tuple[int, int] | None = None
    max_batch: int | None = None

    def accepts(self, n: int, h: int, w: int) -> bool:
        if h < self.min_hw[0] or w < self.min_hw[1]:
            return False
        if self.max_hw is not None and (h > self.max_hw[0] or w > self.max_hw[1]):
            return False
        return self.max_batch is None or n <= self.max_batch


class Engine:
    """Base class: subclasses set the attributes and implement ``_run``."""

    name: str = "engine"          # backend: torch, triton, openvino, onnxruntime, tensorrt
    precision: str = "fp32"       # the precision that actually runs (not only the one asked)
    requested_precision: str = "fp32"
    precision_choice: str = ""    # for "auto": what was chosen and why (precision.Choice.line)
    device: str = "cpu"           # human-readable device description
    torch_device: torch.device = torch.device("cpu")
    shapes: ShapeRange = ShapeRange()
    # Peak working memory per LR pixel (bytes), used by the tiler to pick a tile size.
    bytes_per_lr_pixel: int = 12 * 1024
    # Receptive-field radius in LR pixels (model.receptive_field_radius; 40 for B=16): tiles
    # overlapping by this much give exactly the whole-frame result.
    radius: int = 40

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        if lr.ndim != 4 or lr.shape[1] != 3:
            raise ValueError(f"expected an NCHW RGB batch, got shape {tuple(lr.shape)}")
        n, _, h, w = lr.shape
        if not self.shapes.accepts(n, h, w):
            raise ValueError(f"{self.name} engine does not accept input {n}x3x{h}x{w} "
                             f"(accepts {self.shapes})")
        lr = lr.to(self.torch_device, torch.float32, non_blocking=True)
        return self._run(lr)

    def _run(self, lr: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def info(self) -> dict:
        d = {"backend": self.name, "precision": self.precision,
             "requested_precision": self.requested_precision, "device": self.device}
        if self.precision_choice:
            d["precision_choice"] = self.precision_choice
        return d

    def describe(self) -> str:
        """One line for the start of a run: backend, the precision that runs and why (auto's
        choice, or the precision asked when it differs), device."""
        why = f" ({self.precision_choice})" if self.precision_choice else \
            "" if self.requested_precision == self.precision else f" (asked {self.requested_precision})"
        return f"{self.name} {self.precision}{why} on {self.device}"

    def close(self) -> None:
        """Release backend resources (GPU buffers, contexts). Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"<{self.name} engine {self.precision} on {self.device}>"


def check_options(backend: str, options: dict, accepted) -> dict:
    """Refuse options a backend does not know (a misspelled option must not be ignored)."""
    from srgan_fast.errors import SrganError

    unknown = sorted(set(options) - set(accepted))
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise SrganError(f"unknown option{'s' if len(unknown) > 1 else ''} {names} for the {backend} engine "
                         f"(accepted: {', '.join(sorted(accepted)) or 'none'})")
    return options


def shape_range(record) -> ShapeRange:
    """The input sizes an artifact accepts: its profile when enforced, else any size."""
    if not record.shapes_enforced:
        return ShapeRange()
    s = record.shapes
    return ShapeRange(min_hw=s.min[1:], max_hw=s.max[1:], max_batch=s.max[0])


def artifact_device(record, device: str | None) -> str:
    """Where an artifact runs: the device it was built for, or another of the same kind (another
    GPU index); a different kind of device is refused, never silently ignored."""
    from srgan_fast.errors import SrganError

    if device is None or str(device) == record.torch_device:
        return record.torch_device
    if str(device).startswith("cuda") != record.torch_device.startswith("cuda"):
        raise SrganError(f"{record.path}: built for {record.torch_device} ({record.device}), cannot run on "
                         f"{device}: build one for it with python -m srgan_fast.build")
    return str(device)
