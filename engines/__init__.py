"""Inference backends behind one interface (``base.Engine``); ``open_engine`` picks and opens one.

Each backend lives in ``<name>_engine.py`` and exposes ``open_engine(weights, precision, **options)``.
Backends import their optional library only when opened, so a missing extra costs nothing until
it is asked for, and then gives a one-line install hint.
"""
from __future__ import annotations

import importlib
import importlib.util

from .base import SCALE, Engine, ShapeRange

BACKENDS = ("torch", "triton", "openvino", "onnxruntime", "tensorrt")

__all__ = ["BACKENDS", "SCALE", "Engine", "ShapeRange", "default_backend", "open_engine"]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def default_backend() -> str:
    """TensorRT on an NVIDIA GPU with tensorrt installed, else OpenVINO on the CPU, else torch."""
    import torch

    if torch.cuda.is_available() and _has("tensorrt"):
        return "tensorrt"
    if _has("openvino"):
        return "openvino"
    return "torch"


def open_engine(backend: str = "auto", precision: str = "fp32", weights=None, **options) -> Engine:
    """Open an engine for ``weights`` (None: the shipped generator) at ``precision``."""
    from srgan_fast.errors import SrganError

    if backend == "auto":
        backend = default_backend()
    if backend not in BACKENDS:
        raise SrganError(f"unknown backend {backend!r} (choose from auto, {', '.join(BACKENDS)})")
    module = importlib.import_module(f".{backend}_engine", __name__)
    return module.open_engine(weights=weights, precision=precision, **options)


def load_artifact(path, weights=None, **options) -> Engine:
    """Open a built artifact (``python -m srgan_fast.build``) by its file or folder.

    The sidecar says which backend runs it; a corrupt artifact is refused in one line, and one
    built for other weights, another device or other library versions is rebuilt (or refused).
    """
    from srgan_fast.artifacts import load_artifact as _load, open_engine_for

    return open_engine_for(_load(path, weights=weights), **options)
