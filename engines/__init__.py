"""Inference backends behind one interface (``base.Engine``); the facade that picks and opens one.

- ``open_engine(backend, precision, weights, **options)``: torch and triton run the weights
  directly (``<name>_engine.open_engine``); openvino, onnxruntime and tensorrt run a built
  artifact, so the facade asks the build for it (cache hit or a fresh build) and opens it with
  ``<name>_engine.from_artifact``. This is the only place an engine module leads to the build, and
  it is imported inside the function: runtime backends never import ``srgan_fast.build``.
- ``open_artifact(path)`` (old name ``load_artifact``): an engine for an artifact on disk.
Unknown options are an error naming the accepted ones. Backends import their optional library
only when opened, and this package imports torch only when an engine is asked for.
"""
from __future__ import annotations

from .registry import ARTIFACT_BACKENDS, BACKENDS, BUILD_OPTIONS, backend_module, open_record

__all__ = ["ARTIFACT_BACKENDS", "BACKENDS", "SCALE", "Engine", "ShapeRange", "default_backend", "load_artifact",
           "open_artifact", "open_engine", "open_record"]


def __getattr__(name):  # Engine, ShapeRange, SCALE without importing torch at package import
    if name in ("Engine", "ShapeRange", "SCALE"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_backend() -> str:
    """The one ``auto`` choice (hardware.auto_backend): TensorRT on an NVIDIA GPU with tensorrt,
    else OpenVINO on the CPU, else ONNX Runtime, else torch."""
    from srgan_fast.hardware import auto_backend

    return auto_backend(BACKENDS)


def _log_default(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr)


def open_engine(backend: str = "auto", precision: str = "fp32", weights=None, **options):
    """Open an engine for ``weights`` (None: the shipped generator) at ``precision``."""
    from .base import check_options

    if backend == "auto":
        backend = default_backend()
    module = backend_module(backend)
    if backend not in ARTIFACT_BACKENDS:
        return module.open_engine(weights=weights, precision=precision, **options)
    check_options(backend, options, BUILD_OPTIONS + module.OPTIONS)
    if backend == "tensorrt":
        from srgan_fast.errors import require

        require("tensorrt", "gpu")  # a missing tensorrt is reported before any export work
    from srgan_fast.build.pipeline import ensure_artifact  # the facade may build, lazily

    build = {k: options.pop(k) for k in BUILD_OPTIONS if k in options}
    record = ensure_artifact(weights, precision, backend, **build)
    return open_record(record, **options)


def _weights_sha256(weights) -> str:
    from srgan_fast.digest import file_sha256
    from srgan_fast.errors import SrganError

    try:
        return file_sha256(weights)
    except OSError as e:
        raise SrganError(f"{weights}: cannot read the weights ({e.strerror})") from None


def open_artifact(path, weights=None, rebuild_stale: bool = True, log=None, **options):
    """An engine for a built artifact (``python -m srgan_fast.build``) given by its file or folder.

    The sidecar says which backend runs it; a corrupt or edited artifact is refused in one line,
    and one built for other weights, another device or other library versions is rebuilt from
    the weights it records (or refused with the reason when they are gone or ``rebuild_stale``
    is False).
    """
    from srgan_fast.artifact import environment, read_record, staleness, target_device
    from srgan_fast.errors import SrganError

    record = read_record(path)
    try:
        device = target_device(record.target, record.torch_device)
    except SrganError as e:
        raise SrganError(f"{record.path}: built for {record.target} on {record.device}, which this machine "
                         f"cannot run ({e})") from None
    expected = _weights_sha256(weights) if weights is not None else None
    reasons = staleness(record, environment(record.target, record.precision_requested, device), expected)
    if reasons:
        if not rebuild_stale:
            raise SrganError(f"{record.path}: stale or foreign artifact ({'; '.join(reasons)})")
        from srgan_fast.build.pipeline import rebuild_stale as rebuild  # the facade may build, lazily

        record = rebuild(record, reasons, weights, log or _log_default)
    return open_record(record, **options)


load_artifact = open_artifact  # the old name (it returns an Engine, not an artifact record)
