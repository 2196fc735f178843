"""ONNX export of the generator and the checks every graph goes through.

The fp32 graph is exported from ``fold_bn(generator)`` with the output mapping and clamp inside,
so every runtime returns [0, 1] RGB. Input ``lr`` and output ``sr`` are float32 NCHW with
dynamic batch, height and width; the graph is Conv / PRelu / Add / DepthToSpace / Mul / Clip.
Every file the build writes is checked with ``onnx.checker`` and run on a CPU runtime against
the PyTorch reference through ``srgan_fast.parity`` (``parity`` below aggregates over images).
The fp16 and INT8 variants are made in ``fp16`` and ``int8``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path

import torch

from ..errors import SrganError, require

# Opset 18: Conv/PRelu/DepthToSpace/Clip are all stable there, and it is the newest opset
# TensorRT 10.x, OpenVINO, ONNX Runtime and NNCF all read without conversion.
DEFAULT_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "lr", "sr"


def need(module: str, extra: str = "cpu"):
    return require(module, extra)


@contextlib.contextmanager
def quiet():
    """Silence the exporters' progress lines and warnings (they go to stdout and logging)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logging.disable(previous)


def export_onnx(generator, path, opset: int = DEFAULT_OPSET, metadata: dict | None = None) -> Path:
    """Write ``fold_bn(generator)`` (mapping and clamp included) as an fp32 ONNX file and check it.

    Uses torch's ``torch.export``-based exporter (``dynamo=True``): it yields a clean
    Conv/PRelu/DepthToSpace graph with symbolic batch/height/width; the TorchScript exporter is
    deprecated. The sample input has batch 2 and unequal sides so no dimension gets specialized.
    """
    onnx = need("onnx")
    from ..model import fold_bn

    path = Path(path)
    model = fold_bn(generator).eval()
    sample = torch.rand(2, 3, 24, 28)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with quiet(), torch.no_grad():
            torch.onnx.export(model, (sample,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              opset_version=opset, dynamo=True, optimize=True, verbose=False,
                              external_data=False,
                              dynamic_shapes={"x": {0: "batch", 2: "height", 3: "width"}})
        proto = onnx.load(str(tmp))
        _strip_exporter_notes(proto)
        set_metadata(proto, {"srgan_fast.graph": "fp32", **(metadata or {})})
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path


def _strip_exporter_notes(proto) -> None:
    """Drop the exporter's per-node notes (stack traces with local paths): not needed to run."""
    for node in proto.graph.node:
        del node.metadata_props[:]
    for field in (proto.graph.input, proto.graph.output, proto.graph.value_info, proto.graph.initializer):
        for item in field:
            if hasattr(item, "metadata_props"):
                del item.metadata_props[:]
    del proto.metadata_props[:]


def set_metadata(proto, meta: dict) -> None:
    existing = {p.key: p for p in proto.metadata_props}
    for k, v in meta.items():
        if k in existing:
            existing[k].value = str(v)
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, str(v)


def onnx_metadata(path) -> dict:
    onnx = need("onnx")
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def ort_session(path, providers=None):
    ort = need("onnxruntime")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    model = path if isinstance(path, bytes) else str(path)
    try:
        return ort.InferenceSession(model, opts, providers=providers or ["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT has its own exception types
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else e.__class__.__name__
        name = "in-memory graph" if isinstance(path, bytes) else path
        raise SrganError(f"{name}: ONNX Runtime cannot load it ({first})") from None


def run_onnx(path_or_session, images: list[torch.Tensor]) -> list[torch.Tensor]:
    """Run an ONNX file on ONNX Runtime's CPU provider, one image at a time."""
    sess = path_or_session if hasattr(path_or_session, "run") else ort_session(path_or_session)
    return [torch.from_numpy(sess.run(None, {INPUT_NAME: x.numpy()})[0]) for x in images]


def reference_outputs(generator, images: list[torch.Tensor]) -> list[torch.Tensor]:
    """The fp32 PyTorch reference (the unfolded generator in eval mode)."""
    g = generator.eval().float()
    with torch.inference_mode():
        return [g(x) for x in images]


def parity(outputs: list[torch.Tensor], references: list[torch.Tensor], precision: str) -> dict:
    """One report over several images: the worst max-abs error, the lowest PSNR, ok only if all are."""
    from ..parity import compare

    reports = [compare(o, r, precision) for o, r in zip(outputs, references)]
    worst = max(reports, key=lambda r: r.max_abs)
    return {"precision": precision, "images": len(reports), "ok": all(r.ok for r in reports),
            "max_abs": worst.max_abs, "psnr_db": min(r.psnr_db for r in reports),
            "nan": sum(r.nan for r in reports), "inf": sum(r.inf for r in reports),
            "atol": worst.atol, "rtol": worst.rtol, "worst": worst.summary()}


def describe_parity(p: dict) -> str:
    state = "ok" if p["ok"] else "FAIL"
    return (f"{state}: max|err| {p['max_abs']:.3g}, min PSNR {p['psnr_db']:.2f} dB over {p['images']} "
            f"images (tolerance {p['precision']}: atol {p['atol']:g}, rtol {p['rtol']:g})")
