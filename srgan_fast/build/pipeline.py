"""The build pipeline: export -> (fp16 | Q/DQ int8) -> compile -> verify -> publish, and the cache lookup.

``ensure_artifact`` returns the verified record for a set of inputs, from the cache when an intact,
current artifact is there, else built. ``rebuild_stale`` rebuilds an artifact opened by path that
no longer fits this machine (other library versions, device) from the weights it records.
Every step logs one line; the sidecar is assembled step by step and written last, sealed.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..artifact import ARTIFACT_FILES, FORMAT, FORMAT_VERSION, ArtifactRecord, ShapeProfile, read_record, \
    sidecar_path, staleness
from ..errors import SrganError
from ..eval import gate
from . import cache
from .export import DEFAULT_OPSET, describe_parity, parity, reference_outputs, run_onnx
from .spec import BuildSpec, ModelRef, make_spec, uses_calibration


def _log_default(msg: str) -> None:
    print(msg, file=sys.stderr)


@dataclass
class _Build:
    """One build in progress: its inputs, temporary folder, check images and the growing sidecar."""

    spec: BuildSpec
    g: object
    tmp: Path
    log: object
    checks: list = field(default_factory=list)
    checks_desc: str = ""
    refs: list = field(default_factory=list)
    sidecar: dict = field(default_factory=dict)
    calib: list | None = None


def _sidecar_head(b: _Build, key: str) -> dict:
    from ..model import receptive_field_radius

    s, g = b.spec, b.g
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "key": key,
            "target": s.target, "device": s.env["device"], "device_id": s.env["device_id"],
            "torch_device": s.device, "precision_requested": s.precision, "precision": s.plan.runs,
            "precision_note": s.plan.note, "graph": s.plan.graph,
            "model": {"sha256": s.model.sha256, "path": s.model.path, "name": s.model.name,
                      "num_blocks": g.num_blocks, "channels": g.channels, "output_mapping": g.output_mapping,
                      "radius": receptive_field_radius(g)},
            "libraries": s.env["libraries"],
            "shapes": {**s.shapes.as_dict(), "enforced": s.shapes_enforced}}


def _export_step(b: _Build, cache_root: Path) -> Path:
    """The fp32 ONNX graph, checked against PyTorch (a damaged cached copy is exported again)."""
    from ..eval.datasets import check_images

    fp32_onnx = b.tmp / "model.fp32.onnx"
    b.checks, b.checks_desc = check_images()
    b.refs = reference_outputs(b.g, b.checks)
    stored = cache.export_cached(b.spec, b.g, fp32_onnx, cache_root, b.log)
    try:
        result = parity(run_onnx(fp32_onnx, b.checks), b.refs, "fp32")
    except SrganError:
        result = {"ok": False}
    if not result["ok"] and stored is not None:
        b.log(f"  cached export {stored.name} failed its check; exporting again")
        stored.unlink()
        cache.export_cached(b.spec, b.g, fp32_onnx, cache_root, b.log)
        result = parity(run_onnx(fp32_onnx, b.checks), b.refs, "fp32")
    b.log(f"  fp32 ONNX on ONNX Runtime vs PyTorch: {describe_parity(result)}")
    if not result["ok"]:
        raise SrganError(f"the exported ONNX does not match PyTorch: {result['worst']}")
    b.sidecar["export"] = {"opset": DEFAULT_OPSET, "parity": result, "images": b.checks_desc}
    return fp32_onnx


def _announce_calibration(b: _Build, desc: str) -> None:
    """Say which data calibrates; loudly for INT8, whose scales depend on it (issue 13)."""
    from ..eval.datasets import ENV, calibration_source, default_root

    source = calibration_source(b.spec.calib)
    if b.spec.plan.graph != "int8":
        b.log(f"  calibration: {desc}")
        return
    where = {"folder": "your --calib folder", "bsd200": f"shared data in {default_root()}",
             "synthetic": "no real photographs were found"}[source]
    bar = "  " + "=" * 78
    lines = [bar, f"  INT8 CALIBRATION DATA: {desc} ({where})"]
    if source == "synthetic":
        lines.append(f"  INT8 scales from synthetic images may not fit real content. To fix: set {ENV} to a "
                     f"folder with BSD200 (and Set5/Set14 for the quality gate; looked in {default_root()}), "
                     f"or pass --calib DIR with your own images.")
    b.log("\n".join(lines + [bar]))


def _fp16_step(b: _Build, fp32_onnx: Path) -> Path:
    """fp16 graph with the overflow-prone layers kept fp32, checked with exact fp16 storage."""
    from .fp16 import FP16_MAX, activation_ranges, convert_fp16, emulate_onnx

    fp16_onnx = b.tmp / "model.fp16.onnx"
    safety = convert_fp16(fp32_onnx, fp16_onnx, activation_ranges(fp32_onnx, b.calib))
    # fp16 storage emulated exactly (ONNX Runtime's CPU provider hides overflow), and the file
    # also loaded and run by ONNX Runtime.
    safety["parity"] = parity(emulate_onnx(fp16_onnx, b.checks), b.refs, "fp16")
    safety["onnxruntime_parity"] = parity(run_onnx(fp16_onnx, b.checks), b.refs, "fp16")
    b.sidecar["fp16_safety"] = safety
    kept = [k["node"] for k in safety["kept_fp32"]]
    verdict = f"kept fp32: {', '.join(kept)}" if kept else "every layer fits fp16"
    b.log(f"  fp16 safety: largest activation {safety['max_abs']:.4g} (fp16 max {FP16_MAX:.0f}, "
          f"limit {safety['limit']:.0f}); {verdict}")
    b.log(f"  fp16 ONNX (fp16 storage emulated) vs PyTorch: {describe_parity(safety['parity'])}")
    if not safety["parity"]["ok"]:
        raise SrganError(f"the fp16 graph does not match PyTorch: {safety['parity']['worst']}")
    return fp16_onnx


def _graph_steps(b: _Build, fp32_onnx: Path, cache_root: Path) -> Path:
    """The ONNX graph the target compiles: fp32, fp16 or Q/DQ int8."""
    from ..eval.datasets import calibration_images

    spec, source = b.spec, fp32_onnx
    if uses_calibration(spec.precision) or spec.plan.graph in ("fp16", "int8"):
        b.calib, desc = calibration_images(spec.calib)
        b.sidecar["calibration"] = {"source": desc, "folder": str(spec.calib) if spec.calib else None}
        _announce_calibration(b, desc)
    if spec.precision == "fp16" or spec.plan.graph == "fp16":
        # The fp16 graph is made (and checked on the CPU) for every fp16 request, so the report
        # says what TensorRT would get even where fp16 itself does not run.
        fp16_onnx = _fp16_step(b, fp32_onnx)
        if spec.plan.graph == "fp16":
            source = fp16_onnx
    if spec.plan.graph == "int8":
        source = b.tmp / "model.int8.onnx"
        b.sidecar["quantization"] = cache.quantize_cached(spec, fp32_onnx, source, b.calib, cache_root, b.log)
    return source


def _compile_step(b: _Build, source: Path, cache_root: Path) -> Path:
    art_path = b.tmp / ARTIFACT_FILES[b.spec.target]
    if b.spec.target == "tensorrt":
        from ..engines.tensorrt_builder import build_engine

        b.sidecar["tensorrt"] = build_engine(source, art_path, b.spec.shapes,
                                             timing_cache=cache_root / "tensorrt-timing.cache",
                                             device=b.spec.device, allow_tf32=b.spec.plan.graph != "fp32",
                                             log=b.log)
    elif source != art_path:
        shutil.copyfile(source, art_path)
    from ..digest import file_sha256

    b.sidecar["artifact"] = {"file": art_path.name, "bytes": art_path.stat().st_size,
                             "sha256": file_sha256(art_path), "graph_source": source.name}
    return art_path


def _fit(x: torch.Tensor, shapes: ShapeProfile) -> torch.Tensor:
    """Crop (or edge-pad) an NCHW image into the profile's height/width range."""
    h, w = x.shape[-2:]
    th = min(max(h, shapes.min[1]), shapes.max[1])
    tw = min(max(w, shapes.min[2]), shapes.max[2])
    x = x[..., :th, :tw]
    if x.shape[-2] < th or x.shape[-1] < tw:
        x = torch.nn.functional.pad(x, (0, tw - x.shape[-1], 0, th - x.shape[-2]), mode="replicate")
    return x.contiguous()


def _verify_step(b: _Build, art_path: Path) -> None:
    """Run the compiled artifact on the check images (and the INT8 gate) before publishing it."""
    from ..engines.registry import open_record

    spec, runs = b.spec, b.spec.plan.runs
    record = ArtifactRecord.from_sidecar(art_path, b.sidecar)
    checks, desc, refs = b.checks, b.checks_desc, b.refs
    if record.shapes_enforced:  # the check images must fit the profile
        fitted = [_fit(x, spec.shapes) for x in checks]
        if any(a.shape != c.shape for a, c in zip(fitted, checks)):
            checks, desc = fitted, desc + f" cut to the profile ({spec.shapes})"
            refs = reference_outputs(b.g, checks)
    # No compiled-model cache while verifying: the folder is renamed once published.
    options = {"compile_cache": False} if spec.target == "openvino" else {}
    with open_record(record, **options) as engine:
        outs = [engine(x).cpu() for x in checks]
        b.sidecar.update(parity=parity(outs, refs, runs), parity_images=desc, engine_info=engine.info())
        b.log(f"  {spec.target} {runs} vs PyTorch fp32: {describe_parity(b.sidecar['parity'])}")
        if not b.sidecar["parity"]["ok"]:
            raise SrganError(f"{spec.target} {runs} does not match PyTorch within the tolerance "
                             f"table: {b.sidecar['parity']['worst']}")
        if runs == "int8":
            _gate_step(b, engine)


def _gate_step(b: _Build, engine) -> None:
    result = gate.int8_gate(engine, b.g, b.spec.calib)
    b.sidecar["quality_gate"] = result
    b.log(f"  int8 quality gate: {gate.describe_gate(result)}")
    if not result["ok"]:
        msg = (f"INT8 loses more than {gate.INT8_GATE_DB} dB Y-PSNR against fp32 "
               f"({gate.describe_gate(result)}); try other --calib images")
        if b.spec.strict:
            raise SrganError(msg + " (refused: --strict)")
        b.log("  WARNING: " + msg)


def build(spec: BuildSpec, folder: Path, key: str, log, replace: bool = False) -> ArtifactRecord:
    """Export, convert, compile and check; write the folder atomically (sidecar last).

    ``replace``: the folder holds a stale or damaged artifact to overwrite; otherwise a folder
    that appears meanwhile was published by a concurrent build of the same key, and is kept."""
    t0 = time.perf_counter()
    log(f"building {spec.target} {spec.precision} (runs {spec.plan.runs}) for {spec.env['device']}")
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        b = _Build(spec, spec.model.generator(), tmp, log)
        b.sidecar = _sidecar_head(b, key)
        fp32_onnx = _export_step(b, folder.parent)
        source = _graph_steps(b, fp32_onnx, folder.parent)
        art_path = _compile_step(b, source, folder.parent)
        _verify_step(b, art_path)
        keep = {art_path, source} if spec.target == "tensorrt" else {art_path}
        for f in tmp.iterdir():  # intermediates are recorded in the sidecar, not kept
            if f not in keep:
                f.unlink()
        b.sidecar["build_seconds"] = round(time.perf_counter() - t0, 1)
        b.sidecar["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        cache.write_sidecar(sidecar_path(art_path), b.sidecar)
        cache.publish(tmp, folder, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    record = read_record(folder / ARTIFACT_FILES[spec.target])
    record.built = True
    return record


def ensure_artifact(weights=None, precision: str = "fp32", target: str = "auto", shapes=None, calib=None,
                    out=None, device: str | None = None, strict: bool = False, rebuild: bool = False,
                    log=None, model: str | None = None, detail: float | None = None) -> ArtifactRecord:
    """The artifact for these inputs: loaded from the cache when present and intact, else built.
    ``precision`` ``auto``: the artifact of the precision the policy picks (said in the log)."""
    log = log or _log_default
    spec = make_spec(weights, precision, target, shapes, calib, device, strict, model, detail)
    if spec.choice is not None:
        log(f"precision {spec.precision} ({spec.choice.line})")
    key = spec.key()
    folder = cache.cache_dir(out) / f"{spec.target}-{spec.precision}-{key[:16]}"
    if folder.exists() and not rebuild:
        record = read_record(folder / ARTIFACT_FILES[spec.target])  # corrupt: reported, never loaded
        reasons = staleness(record, spec.env, spec.model.sha256)
        if not reasons and record.key == key:
            return record
        log(f"rebuilding {folder.name}: " + ("; ".join(reasons) or "key mismatch"))
    return build(spec, folder, key, log, replace=folder.exists())


def rebuild_stale(record: ArtifactRecord, reasons: list[str], weights=None, log=None) -> ArtifactRecord:
    """Rebuild an artifact opened by path that does not fit this machine (into the cache, from the
    weights it records when they are still there and unchanged), or refuse with the reasons."""
    log = log or _log_default
    src = weights if weights is not None else record.model.path
    expected = ModelRef.resolve(weights).sha256 if weights is not None else record.model.sha256
    if src is None or not Path(src).is_file() or ModelRef.resolve(src).sha256 != expected:
        raise SrganError(f"{record.path}: stale or foreign artifact ({'; '.join(reasons)}); rebuild it with "
                         f"python -m srgan_fast.build --target {record.target} --precision "
                         f"{record.precision_requested} --weights WEIGHTS")
    log(f"{record.path}: {'; '.join(reasons)}; rebuilding from {src}")
    shapes = record.shapes if record.shapes_enforced else None
    calib = (record.sidecar.get("calibration") or {}).get("folder")
    return ensure_artifact(src, record.precision_requested, record.target, shapes=shapes, calib=calib,
                           device=record.torch_device, log=log)
