"""Which backends exist, what options each takes, and opening an engine for a verified artifact.

Imported by the ``engines`` facade and by the build (to verify what it compiled); imports only
the backend modules, so neither direction loops back to the build.
"""
from __future__ import annotations

BACKENDS = ("torch", "triton", "openvino", "onnxruntime", "tensorrt")
# Backends that run a built artifact (``from_artifact``); torch and triton run the weights directly.
ARTIFACT_BACKENDS = ("openvino", "onnxruntime", "tensorrt")
# Options an artifact backend's open passes to the build (srgan_fast.build.ensure_artifact).
BUILD_OPTIONS = ("shapes", "calib", "out", "strict", "rebuild", "log", "device", "model")


def backend_module(name: str):
    """The module of backend ``name`` (its optional library is imported only when an engine opens)."""
    if name == "torch":
        from . import torch_engine as module
    elif name == "triton":
        from . import triton_engine as module
    elif name == "openvino":
        from . import openvino_engine as module
    elif name == "onnxruntime":
        from . import onnxruntime_engine as module
    elif name == "tensorrt":
        from . import tensorrt_engine as module
    else:
        from srgan_fast.errors import SrganError

        raise SrganError(f"unknown backend {name!r} (choose from auto, {', '.join(BACKENDS)})")
    return module


def open_record(record, **options):
    """The engine of a verified ``ArtifactRecord`` (``srgan_fast.artifact.read_record``)."""
    return backend_module(record.target).from_artifact(record, **options)
