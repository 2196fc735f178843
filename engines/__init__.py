"""Inference backends behind one interface (``base.Engine``); the facade that picks and opens one.

- ``open_engine(backend, precision, weights, **options)``: ``precision`` ``auto`` is turned into
  the precision policy's choice for this backend and device first (``precision.resolve``; on a
  GPU after the model's fp16 range check), said in ``engine.precision_choice``; torch and triton
  run the weights directly (``<name>_engine.open_engine``); openvino, onnxruntime and tensorrt run a built
  artifact, so the facade asks the build for it (cache hit or a fresh build) and opens it with
  ``<name>_engine.from_artifact``. This is the only place an engine module leads to the build, and
  it is imported inside the function: runtime backends never import ``srgan_fast.build``.
- ``open_artifact(path)`` (old name ``load_artifact``): an engine for an artifact on disk.
Unknown options are an error naming the accepted ones. Backends import their optional library
only when opened, and this package imports torch only when an engine is asked for.
"""
from __future__ import annotations

from .registry import ARTIFACT_BACKENDS, BACKENDS, BUILD_OPTIONS, backend_module, open_record

__all__ = ["ARTIFACT_BACKENDS", "BACKENDS", "SCALE", "Engine", "ShapeRange", "auto_precision", "default_backend",
           "engine_device", "load_artifact", "mark_auto", "open_artifact", "open_engine", "open_record"]


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
    """Open an engine for ``weights`` (None: the shipped generator) at ``precision`` (``auto``:
    what the precision policy picks here; the engine's ``requested_precision`` is then "auto" and
    ``precision_choice`` says what was chosen and why)."""
    from srgan_fast.precision import AUTO

    from .base import check_options

    if backend == "auto":
        backend = default_backend()
    module = backend_module(backend)
    choice = None
    if backend not in ARTIFACT_BACKENDS:
        if precision == AUTO:
            precision, choice = auto_precision(backend, options.get("device"), weights, None)
        return mark_auto(module.open_engine(weights=weights, precision=precision, **options), choice)
    check_options(backend, options, BUILD_OPTIONS + module.OPTIONS)
    if backend == "tensorrt":
        from srgan_fast.errors import require

        require("tensorrt", "gpu")  # a missing tensorrt is reported before any export work
    if precision == AUTO:
        precision, choice = auto_precision(backend, options.get("device"), weights, options.get("model"))
    from srgan_fast.build.pipeline import ensure_artifact  # the facade may build, lazily

    build = {k: options.pop(k) for k in BUILD_OPTIONS if k in options}
    record = ensure_artifact(weights, precision, backend, **build)
    return mark_auto(open_record(record, **options), choice)


def engine_device(backend: str, device: str | None = None) -> str:
    """``cpu`` or ``cuda[:i]``: where ``backend`` runs when opened with ``device`` (None: its default)."""
    if backend in ARTIFACT_BACKENDS:
        from srgan_fast.artifact import target_device

        return target_device(backend, device)
    if device:
        return str(device)
    from srgan_fast.hardware import cuda_available

    return "cuda" if cuda_available() else "cpu"


def auto_precision(backend: str, device: str | None = None, weights=None, model: str | None = None):
    """(precision, Choice) of ``auto`` for ``backend`` on ``device`` (None: the backend's default);
    the fp16 range check of the weights runs only where it decides (a GPU)."""
    from srgan_fast.fp16_range import fits
    from srgan_fast.precision import AUTO, resolve

    return resolve(backend, AUTO, engine_device(backend, device), lambda: fits(weights, model))


def mark_auto(engine, choice):
    """An engine opened for ``auto``: asked "auto", and the choice in words."""
    if choice is not None:
        engine.requested_precision = "auto"
        engine.precision_choice = choice.line
    return engine


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
