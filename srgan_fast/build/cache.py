"""The artifact cache on disk: its folder, the shared ONNX exports and Q/DQ graphs, publishing.

Default cache: ``~/.cache/srgan_fast`` (``$SRGAN_FAST_CACHE`` or ``--out`` override). The fp32
export and the INT8 graph are made once per model and toolchain and shared by every target; each
build re-checks what it takes from here. A finished artifact folder is moved into place in one
rename, its sidecar written last and sealed, so a crash never leaves a half-built artifact.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from ..artifact import FORMAT_VERSION, dist_version, seal
from ..digest import file_sha256
from ..atomic import write_bytes, write_json
from ..errors import SrganError
from ..userdirs import cache_root


def cache_dir(out=None) -> Path:
    base = Path(out) if out else cache_root()
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SrganError(f"cannot create the artifact folder {base}: {e.strerror}") from None
    return base


def _toolchain(*dists: str) -> list:
    return [dist_version(d) for d in dists]


def _stored_name(cache: Path, sha: str, kind: str, ident: list) -> Path:
    digest = hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:12]
    return cache / "exports" / f"{sha[:16]}-{kind}{digest}.onnx"


def export_cached(spec, g, dst: Path, cache: Path, log) -> Path | None:
    """Export the fp32 graph once per model and toolchain; every target and precision starts
    from it. The copy is re-checked against PyTorch by every build that uses it. Returns the
    cached file when it was reused (None when freshly exported)."""
    from .export import DEFAULT_OPSET, export_onnx

    ident = [spec.model.sha256, FORMAT_VERSION, DEFAULT_OPSET, *_toolchain("torch", "onnx", "onnxscript")]
    stored = _stored_name(cache, spec.model.sha256, "", ident)
    if not stored.is_file():
        log("  exporting ONNX (BN folded, output mapping inside, dynamic batch/height/width)")
        stored.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(g, stored, metadata={"srgan_fast.model_sha256": spec.model.sha256})
        shutil.copyfile(stored, dst)
        return None
    log(f"  ONNX export from the cache ({stored.name})")
    shutil.copyfile(stored, dst)
    return stored


def quantize_cached(spec, fp32_onnx: Path, dst: Path, calib, cache: Path, log) -> dict:
    """NNCF quantization once per model, calibration set and toolchain (OpenVINO, ONNX Runtime
    and TensorRT INT8 builds all start from the same Q/DQ graph)."""
    from .int8 import quantize_int8

    stored = _stored_name(cache, spec.model.sha256, "int8-",
                          [spec.model.sha256, FORMAT_VERSION, spec.env["calib"], *_toolchain("nncf", "onnx", "torch")])
    report_file = Path(str(stored) + ".json")
    if stored.is_file() and report_file.is_file():
        try:
            report = json.loads(report_file.read_text())
            if report.get("sha256") == file_sha256(stored):
                log(f"  INT8 Q/DQ graph from the cache ({stored.name})")
                shutil.copyfile(stored, dst)
                return report
        except (OSError, ValueError):
            pass
        log(f"  cached INT8 graph {stored.name} is damaged; quantizing again")
    log("  quantizing with NNCF (symmetric, per-channel weights, Q/DQ)")
    stored.parent.mkdir(parents=True, exist_ok=True)
    report = quantize_int8(fp32_onnx, dst, calib)
    report["sha256"] = file_sha256(dst)
    write_bytes(stored, dst.read_bytes())
    write_json(report_file, report)
    return report


def write_sidecar(path: Path, sidecar: dict) -> dict:
    """Seal (integrity hash over the JSON as it will be read back) and write the sidecar."""
    sidecar = seal(json.loads(json.dumps(sidecar, default=str)))
    write_json(path, sidecar)
    return sidecar


def publish(tmp: Path, folder: Path, replace: bool) -> None:
    """Move the finished folder into place; a concurrent builder that finished first wins."""
    if folder.exists():
        if not replace:
            shutil.rmtree(tmp, ignore_errors=True)
            return
        shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(tmp, folder)
    except OSError:
        if not folder.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
