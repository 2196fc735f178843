"""Built engines on disk: build once, load many times, never load a stale or damaged one.

An artifact is one folder holding the file a backend runs (an ONNX graph for OpenVINO and ONNX
Runtime, a serialized engine for TensorRT) and a JSON sidecar ``<file>.json`` beside it that
records what it is: model hash, precision asked and precision that runs, target, device, library
versions, shape profile, the parity report against the PyTorch reference, and for INT8 the
quality gate. The folder name carries a key over all of those inputs, so changing the weights, a
library, the machine or the shapes gives a new key and a fresh build; an old folder is simply
never looked up. A sidecar that cannot be read, or whose file does not match its recorded size
and hash, is reported in one line and never loaded. An artifact opened by path that was built
for other weights, another device or other library versions is rebuilt when its weights are at
hand, and otherwise refused with the reason.

Default cache: ``~/.cache/srgan_fast`` (``$SRGAN_FAST_CACHE`` or ``--out`` override).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import __version__
from .errors import SrganError
from .hardware import PRECISIONS, cpu_flags, cpu_has_bf16, cpu_name

FORMAT = "srgan_fast.artifact"
# Bump when the way artifacts are made changes (export, conversion, sidecar layout): every
# artifact made before becomes stale and is rebuilt.
FORMAT_VERSION = 2
TARGETS = ("openvino", "onnxruntime", "tensorrt")
ARTIFACT_FILES = {"openvino": "model.onnx", "onnxruntime": "model.onnx", "tensorrt": "model.engine"}
INT8_GATE_DB = 0.3
# CPU features that decide which kernels a backend picks; part of the device identity.
_CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16",
                 "amx_int8", "amx_fp16")


def _log_default(msg: str) -> None:
    print(msg, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShapeProfile:
    """Input sizes (batch, height, width) in LR pixels: TensorRT's min/opt/max profile."""

    min: tuple[int, int, int]
    opt: tuple[int, int, int]
    max: tuple[int, int, int]

    def as_dict(self) -> dict:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, d: dict) -> "ShapeProfile":
        return cls(tuple(d["min"]), tuple(d["opt"]), tuple(d["max"]))

    def __str__(self) -> str:
        return ":".join("x".join(map(str, s)) for s in (self.min, self.opt, self.max))


# Video defaults: anything from one pixel to a 960x544 frame (4K out), tuned for 1080p output.
DEFAULT_SHAPES = ShapeProfile((1, 1, 1), (1, 270, 480), (1, 544, 960))


def parse_shapes(spec: str | None) -> ShapeProfile | None:
    """``MIN:OPT:MAX`` with each ``NxHxW`` or ``HxW`` (batch 1), or a single size (used as opt
    and max, min 1x1x1). None/empty gives None (the target's default)."""
    if not spec:
        return None

    def one(text: str) -> tuple[int, int, int]:
        try:
            dims = tuple(int(v) for v in text.lower().split("x"))
        except ValueError:
            dims = ()
        if len(dims) == 2:
            dims = (1, *dims)
        if len(dims) != 3 or min(dims) < 1:
            raise SrganError(f"--shapes: cannot read {text!r} (want NxHxW or HxW, positive)")
        return dims

    parts = [one(p) for p in spec.split(":")]
    if len(parts) == 1:
        parts = [(1, 1, 1), parts[0], parts[0]]
    if len(parts) != 3:
        raise SrganError(f"--shapes: want MIN:OPT:MAX or one size, got {spec!r}")
    lo, opt, hi = parts
    if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
        raise SrganError(f"--shapes: need min <= opt <= max in every dimension, got {spec!r}")
    return ShapeProfile(lo, opt, hi)


# ---------------------------------------------------------------------------------------------
# What the machine has and what runs
# ---------------------------------------------------------------------------------------------

def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def resolve_target(target: str = "auto") -> str:
    """``auto``: TensorRT when a CUDA GPU and tensorrt are present, else OpenVINO on the CPU."""
    if target == "auto":
        if torch.cuda.is_available() and _has("tensorrt"):
            return "tensorrt"
        return "openvino" if _has("openvino") else "onnxruntime"
    if target not in TARGETS:
        raise SrganError(f"unknown target {target!r} (choose from auto, {', '.join(TARGETS)})")
    return target


def target_device(target: str, device: str | None = None) -> str:
    """``cpu`` or ``cuda[:i]``: where the target runs."""
    if target == "tensorrt":
        if not torch.cuda.is_available():
            raise SrganError("the tensorrt target needs an NVIDIA GPU with CUDA; none is visible here "
                             "(use --target openvino on the CPU)")
        return device if device and device.startswith("cuda") else "cuda:0"
    if target == "onnxruntime" and device and device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SrganError(f"device {device} asked for onnxruntime, but no CUDA GPU is visible here")
        return device
    if target == "openvino" and device not in (None, "cpu"):
        raise SrganError(f"the openvino target here runs on the CPU (got device {device!r})")
    return "cpu"


def device_identity(device: str) -> tuple[str, str]:
    """(human description, identity string for the key) of ``device``."""
    if device.startswith("cuda"):
        idx = torch.device(device).index or 0
        name = torch.cuda.get_device_name(idx)
        cap = ".".join(map(str, torch.cuda.get_device_capability(idx)))
        return name, f"{name} sm{cap} cuda{torch.version.cuda}"
    flags = cpu_flags()
    feats = ",".join(f for f in _CPU_FEATURES if f in flags)
    return cpu_name(), f"{cpu_name()} [{feats}]"


def library_versions(target: str, precision: str) -> dict:
    v = {"srgan_fast": __version__, "artifact_format": FORMAT_VERSION, "torch": torch.__version__,
         "onnx": _version("onnx")}
    candidates = {"openvino": ["openvino"], "onnxruntime": ["onnxruntime", "onnxruntime-gpu"],
                  "tensorrt": ["tensorrt", "tensorrt-cu12", "tensorrt-cu13"]}[target]
    v[target] = next((ver for ver in map(_version, candidates) if ver), "missing")
    if precision == "int8":
        v["nncf"] = _version("nncf")
    return v


def plan_precision(target: str, asked: str, device: str) -> tuple[str, str, str]:
    """(precision that runs, ONNX graph it runs from, note). Never silent: the note says why a
    precision differs from the one asked (DESIGN.md §3)."""
    if asked not in PRECISIONS:
        raise SrganError(f"unknown precision {asked!r} (choose from {', '.join(PRECISIONS)})")
    if target == "openvino":
        if asked == "int8":
            between = "bf16" if cpu_has_bf16() else "fp32"
            return "int8", "int8", f"INT8 convolutions from the Q/DQ graph; the layers between them {between}"
        if asked == "fp32":
            return "fp32", "fp32", "inference precision hint f32 (OpenVINO would pick bf16 here by default)"
        if cpu_has_bf16():
            note = "inference precision hint bf16 (AVX512-BF16/AMX)"
            if asked == "fp16":
                note = ("fp16 asked: running bf16 instead. OpenVINO's f16 hint on this CPU (no AMX-FP16) "
                        "measured slower than fp32; bf16 has the same 16-bit storage, AMX kernels and "
                        "fp32's range (no overflow)")
            return "bf16", "fp32", note
        return "fp32", "fp32", f"{asked} asked: this CPU has no bf16 arithmetic, running fp32"
    if target == "onnxruntime":
        if device == "cpu":
            if asked == "int8":
                return "int8", "int8", ("Q/DQ graph on ONNX Runtime's CPU provider (slow and memory-hungry "
                                        "at large sizes; OpenVINO is the fast CPU INT8 path)")
            if asked in ("fp16", "bf16"):
                return "fp32", "fp32", (f"{asked} asked: ONNX Runtime's CPU provider has no fast 16-bit "
                                        "convolutions, running fp32 (use --target openvino for bf16)")
            return "fp32", "fp32", "CPU provider"
        if asked == "int8":
            raise SrganError("int8 on ONNX Runtime's CUDA provider is not supported here: "
                             "use --target tensorrt for GPU INT8")
        if asked == "fp32":
            return "fp32", "fp32", "CUDA provider"
        note = "fp16 graph on the CUDA provider" + (" (bf16 asked: ONNX Conv has no bf16 type)"
                                                    if asked == "bf16" else "")
        return "fp16", "fp16", note
    # tensorrt: strongly typed, so the graph's types are what runs.
    if asked == "int8":
        return "int8", "int8", "explicit quantization from the Q/DQ graph (strongly typed)"
    if asked == "fp32":
        return "fp32", "fp32", "fp32 graph, TF32 disabled (strongly typed)"
    note = "fp16 graph (strongly typed), overflow-prone layers kept fp32"
    if asked == "bf16":
        note = "bf16 asked: ONNX Conv has no bf16 type, building the fp16 graph instead; " + note
    return "fp16", "fp16", note


# ---------------------------------------------------------------------------------------------
# Model identity
# ---------------------------------------------------------------------------------------------

def _generator_sha256(g) -> str:
    h = hashlib.sha256()
    h.update(f"{g.num_blocks}/{g.channels}/{g.output_mapping}".encode())
    for k, v in sorted(g.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()


@dataclass
class ModelRef:
    """The weights an artifact is built from: a file (None = shipped weights) or a Generator."""

    sha256: str
    path: str | None
    _generator: object = None

    @classmethod
    def resolve(cls, weights) -> "ModelRef":
        from .checkpoints import PACKAGE_WEIGHTS, file_sha256
        from .model import Generator

        if isinstance(weights, Generator):
            return cls(_generator_sha256(weights), None, weights)
        path = Path(weights) if weights is not None else PACKAGE_WEIGHTS
        if not path.is_file():
            hint = " (the shipped weights are missing: pass --weights)" if weights is None else ""
            raise SrganError(f"{path}: no such weights file{hint}")
        return cls(file_sha256(path), str(path.resolve()))

    def generator(self):
        if self._generator is None:
            from .checkpoints import load_generator

            self._generator = load_generator(self.path)
        return self._generator.eval()


def _calib_fingerprint(calib) -> str | None:
    """Identity of a --calib folder: its image names, sizes and times (content-sensitive enough)."""
    if calib is None:
        return None
    from .imageio import list_images

    folder = Path(calib)
    if not folder.is_dir():
        raise SrganError(f"--calib {folder}: not a folder")
    h = hashlib.sha256(str(folder.resolve()).encode())
    for f in list_images(folder):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# The artifact record
# ---------------------------------------------------------------------------------------------

@dataclass
class Artifact:
    path: Path          # the file the backend runs
    sidecar: dict
    built: bool = False  # True when this call built it (False: loaded from the cache)

    @property
    def target(self) -> str:
        return self.sidecar["target"]

    @property
    def precision(self) -> str:
        return self.sidecar["precision"]

    @property
    def requested_precision(self) -> str:
        return self.sidecar["precision_requested"]

    @property
    def shapes(self) -> ShapeProfile:
        return ShapeProfile.from_dict(self.sidecar["shapes"])

    @property
    def shapes_enforced(self) -> bool:
        return bool(self.sidecar["shapes"].get("enforced", True))

    def shape_range(self):
        from srgan_fast.engines.base import ShapeRange

        if not self.shapes_enforced:
            return ShapeRange()
        s = self.shapes
        return ShapeRange(min_hw=s.min[1:], max_hw=s.max[1:], max_batch=s.max[0])

    def summary(self) -> str:
        sc = self.sidecar
        lines = [f"artifact  {self.path}",
                 f"target    {sc['target']} on {sc['device']}",
                 f"precision asked {sc['precision_requested']}, runs {sc['precision']} ({sc['precision_note']})",
                 f"model     sha256 {sc['model']['sha256'][:16]}… "
                 f"({sc['model'].get('path') or 'in-memory generator'})",
                 f"shapes    {ShapeProfile.from_dict(sc['shapes'])}"
                 + ("" if sc["shapes"].get("enforced", True) else " (recorded; this backend takes any size)")]
        from .export import describe_parity

        lines.append(f"parity    {describe_parity(sc['parity'])} on {sc['parity_images']}")
        if sc.get("fp16_safety"):
            fs = sc["fp16_safety"]
            kept = ", ".join(k["node"] for k in fs["kept_fp32"]) or "none"
            lines.append(f"fp16      largest activation {fs['max_abs']:.4g} (limit {fs['limit']:.0f}); "
                         f"kept fp32: {kept}; fp16 graph {describe_parity(fs['parity'])}")
        if sc.get("quality_gate"):
            lines.append(f"int8 gate {describe_gate(sc['quality_gate'])}")
        return "\n".join(lines)


def describe_gate(gate: dict) -> str:
    parts = [f"{name}: fp32 {s['fp32_db']:.2f} dB, int8 {s['int8_db']:.2f} dB, loss {s['loss_db']:+.3f} dB"
             for name, s in gate["sets"].items()]
    state = "ok" if gate["ok"] else f"OVER the {gate['limit_db']} dB limit"
    return f"{state}: " + "; ".join(parts) + f" (Y-PSNR vs HR, {gate['source']})"


def sidecar_path(artifact_path: Path) -> Path:
    return Path(str(artifact_path) + ".json")


def _file_sha256(path: Path) -> str:
    from .checkpoints import file_sha256

    return file_sha256(path)


def read_artifact(path) -> Artifact:
    """Open an artifact by its file or folder and check it is intact (size and sha256).

    Corrupt or foreign files raise a one-line SrganError; this never loads what it cannot verify.
    """
    path = Path(path)
    if path.is_dir():
        sidecars = sorted(p for p in path.glob("*.json") if not p.name.startswith("."))
        if len(sidecars) != 1:
            raise SrganError(f"{path}: not a srgan_fast artifact folder (expected one sidecar .json, "
                             f"found {len(sidecars)})")
        side = sidecars[0]
        path = side.with_name(side.name[: -len(".json")])
    else:
        side = sidecar_path(path)
    if not path.exists():
        raise SrganError(f"{path}: no such artifact file")
    if not side.is_file():
        raise SrganError(f"{path}: no sidecar {side.name} beside it, so it is not a srgan_fast artifact "
                         f"(build one with: python -m srgan_fast.build)")
    try:
        sidecar = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SrganError(f"{side}: corrupt sidecar ({e.__class__.__name__}: {e}); delete the folder "
                         f"or rebuild with --rebuild") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT:
        raise SrganError(f"{side}: not a srgan_fast artifact sidecar (foreign file)")
    rec = sidecar.get("artifact") or {}
    if rec.get("file") != path.name:
        raise SrganError(f"{side}: describes {rec.get('file')!r}, not {path.name!r}")
    size = path.stat().st_size
    if size != rec.get("bytes"):
        raise SrganError(f"{path}: corrupt artifact: {size} bytes, the sidecar records {rec.get('bytes')} "
                         f"(truncated or replaced); rebuild with --rebuild")
    if _file_sha256(path) != rec.get("sha256"):
        raise SrganError(f"{path}: corrupt artifact: sha256 does not match its sidecar (modified); "
                         f"rebuild with --rebuild")
    return Artifact(path=path, sidecar=sidecar)


def staleness(sidecar: dict, expected: dict) -> list[str]:
    """Why an intact artifact does not fit ``expected`` (empty: it fits)."""
    reasons = []
    if sidecar.get("format_version") != FORMAT_VERSION:
        reasons.append(f"artifact format {sidecar.get('format_version')} (now {FORMAT_VERSION})")
    if expected.get("model_sha256") and sidecar["model"]["sha256"] != expected["model_sha256"]:
        reasons.append("built from other weights")
    if sidecar.get("device_id") != expected["device_id"]:
        reasons.append(f"built for {sidecar.get('device_id')!r}, this is {expected['device_id']!r}")
    old, new = sidecar.get("libraries", {}), expected["libraries"]
    changed = [f"{k} {old.get(k)} -> {v}" for k, v in new.items() if old.get(k) != v]
    if changed:
        reasons.append("library versions changed: " + ", ".join(changed))
    return reasons


# ---------------------------------------------------------------------------------------------
# Build or load
# ---------------------------------------------------------------------------------------------

def cache_dir(out=None) -> Path:
    base = Path(out) if out else Path(os.environ.get("SRGAN_FAST_CACHE") or Path.home() / ".cache" / "srgan_fast")
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SrganError(f"cannot create the artifact folder {base}: {e.strerror}") from None
    return base


@dataclass
class BuildSpec:
    model: ModelRef
    target: str
    precision: str               # asked
    device: str
    shapes: ShapeProfile
    shapes_given: bool
    calib: Path | None
    strict: bool = False
    env: dict = field(default_factory=dict)

    def key(self) -> str:
        ident = {"format": FORMAT_VERSION, "model": self.model.sha256, "target": self.target,
                 "precision": self.precision, "device_id": self.env["device_id"],
                 "libraries": self.env["libraries"], "shapes": self.shapes.as_dict(),
                 "shapes_given": self.shapes_given, "calib": self.env["calib"]}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def make_spec(weights=None, precision: str = "fp32", target: str = "auto", shapes=None, calib=None,
              device: str | None = None, strict: bool = False) -> BuildSpec:
    target = resolve_target(target)
    device = target_device(target, device)
    if isinstance(shapes, str):
        shapes = parse_shapes(shapes)
    model = ModelRef.resolve(weights)
    plan_precision(target, precision, device)  # validates the precision early
    name, ident = device_identity(device)
    calib_id = None
    if precision in ("int8", "fp16"):  # calibration shapes the graph: INT8 scales, fp16 safety
        from .export import shared_data_dir

        shared = shared_data_dir()
        calib_id = _calib_fingerprint(calib) or (
            "default-bsd200" if shared is not None and (shared / "BSD200").is_dir() else "default-synthetic")
    env = {"device": name, "device_id": ident, "libraries": library_versions(target, precision),
           "calib": calib_id}
    return BuildSpec(model=model, target=target, precision=precision, device=device,
                     shapes=shapes or DEFAULT_SHAPES, shapes_given=shapes is not None,
                     calib=Path(calib) if calib else None, strict=strict, env=env)


def ensure_artifact(weights=None, precision: str = "fp32", target: str = "auto", shapes=None, calib=None,
                    out=None, device: str | None = None, strict: bool = False, rebuild: bool = False,
                    log=None) -> Artifact:
    """The artifact for these inputs: loaded from the cache when present and intact, else built."""
    log = log or _log_default
    spec = make_spec(weights, precision, target, shapes, calib, device, strict)
    key = spec.key()
    folder = cache_dir(out) / f"{spec.target}-{spec.precision}-{key[:16]}"
    art_file = folder / ARTIFACT_FILES[spec.target]
    if folder.exists() and not rebuild:
        art = read_artifact(art_file)  # raises on corruption: reported, never loaded blindly
        reasons = staleness(art.sidecar, {"model_sha256": spec.model.sha256, **spec.env})
        if not reasons and art.sidecar.get("key") == key:
            return art
        log(f"rebuilding {folder.name}: " + ("; ".join(reasons) or "key mismatch"))
    return build(spec, folder, key, log, replace=folder.exists())


def load_artifact(path, weights=None, rebuild_stale: bool = True, log=None) -> Artifact:
    """Open an artifact by path; one built for other weights/device/libraries is rebuilt (into the
    cache, from the weights it records, when they are still there) or refused with the reason."""
    log = log or _log_default
    art = read_artifact(path)
    sc = art.sidecar
    target = sc.get("target")
    if target not in TARGETS:
        raise SrganError(f"{art.path}: unknown target {target!r} in its sidecar")
    expected_sha = ModelRef.resolve(weights).sha256 if weights is not None else None
    try:
        device = target_device(target, sc.get("torch_device"))
    except SrganError as e:
        raise SrganError(f"{art.path}: built for {target} on {sc.get('device')}, which this machine "
                         f"cannot run ({e})") from None
    name, ident = device_identity(device)
    env = {"device": name, "device_id": ident, "libraries": library_versions(target, sc["precision_requested"])}
    reasons = staleness(sc, {"model_sha256": expected_sha, **env})
    if not reasons:
        return art
    src = weights if weights is not None else sc["model"].get("path")
    can = rebuild_stale and src is not None and Path(src).is_file() and \
        ModelRef.resolve(src).sha256 == (expected_sha or sc["model"]["sha256"])
    if not can:
        raise SrganError(f"{art.path}: stale or foreign artifact ({'; '.join(reasons)}); rebuild it with "
                         f"python -m srgan_fast.build --target {target} --precision {sc['precision_requested']} "
                         f"--weights WEIGHTS")
    log(f"{art.path}: {'; '.join(reasons)}; rebuilding from {src}")
    shapes = ShapeProfile.from_dict(sc["shapes"]) if sc["shapes"].get("enforced", True) else None
    return ensure_artifact(src, sc["precision_requested"], target, shapes=shapes,
                           calib=sc.get("calibration", {}).get("folder"), device=device, log=log)


def open_engine_for(art: Artifact, **options):
    """The engine object of ``art``'s backend."""
    module = importlib.import_module(f"srgan_fast.engines.{art.target}_engine")
    return module.from_artifact(art, **options)


def build(spec: BuildSpec, folder: Path, key: str, log, replace: bool = False) -> Artifact:
    """Export, convert, compile and check; write the folder atomically (sidecar last).

    ``replace``: the folder holds a stale or damaged artifact to overwrite; otherwise a folder
    that appears meanwhile was published by a concurrent build of the same key, and is kept."""
    from . import export as ex

    t0 = time.perf_counter()
    run_precision, graph, note = plan_precision(spec.target, spec.precision, spec.device)
    log(f"building {spec.target} {spec.precision} (runs {run_precision}) for {spec.env['device']}")
    g = spec.model.generator()
    from .model import receptive_field_radius

    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        fp32_onnx = tmp / "model.fp32.onnx"
        checks, checks_desc = ex.check_images()
        refs = ex.reference_outputs(g, checks)
        stored = _export_cached(spec, g, fp32_onnx, folder.parent, log)
        try:
            export_parity = ex.parity(ex.run_onnx(fp32_onnx, checks), refs, "fp32")
        except SrganError:
            export_parity = {"ok": False}
        if not export_parity["ok"] and stored is not None:  # a damaged cached export: redo it
            log(f"  cached export {stored.name} failed its check; exporting again")
            stored.unlink()
            _export_cached(spec, g, fp32_onnx, folder.parent, log)
            export_parity = ex.parity(ex.run_onnx(fp32_onnx, checks), refs, "fp32")
        log(f"  fp32 ONNX on ONNX Runtime vs PyTorch: {ex.describe_parity(export_parity)}")
        if not export_parity["ok"]:
            raise SrganError(f"the exported ONNX does not match PyTorch: {export_parity['worst']}")
        sidecar = {"format": FORMAT, "format_version": FORMAT_VERSION, "key": key,
                   "target": spec.target, "device": spec.env["device"], "device_id": spec.env["device_id"],
                   "torch_device": spec.device,
                   "precision_requested": spec.precision, "precision": run_precision, "precision_note": note,
                   "graph": graph,
                   "model": {"sha256": spec.model.sha256, "path": spec.model.path, "num_blocks": g.num_blocks,
                             "channels": g.channels, "output_mapping": g.output_mapping,
                             "radius": receptive_field_radius(g)},
                   "libraries": spec.env["libraries"],
                   "shapes": {**spec.shapes.as_dict(), "enforced": spec.target == "tensorrt" or spec.shapes_given},
                   "export": {"opset": ex.DEFAULT_OPSET, "parity": export_parity, "images": checks_desc}}
        source = fp32_onnx
        if graph in ("fp16", "int8") or spec.precision == "fp16":
            calib, calib_desc = ex.calibration_images(spec.calib)
            sidecar["calibration"] = {"source": calib_desc, "folder": str(spec.calib) if spec.calib else None}
            log(f"  calibration: {calib_desc}")
        if spec.precision == "fp16" or graph == "fp16":
            # Measured ranges drive the fp16 safety check; the fp16 graph is made (and checked on
            # the CPU) for every fp16 request, so the report says what TensorRT would get.
            ranges = ex.activation_ranges(fp32_onnx, calib)
            fp16_onnx = tmp / "model.fp16.onnx"
            safety = ex.convert_fp16(fp32_onnx, fp16_onnx, ranges)
            # fp16 storage emulated exactly (ONNX Runtime's CPU provider hides overflow), and the
            # file also loaded and run by ONNX Runtime.
            safety["parity"] = ex.parity(ex.emulate_onnx(fp16_onnx, checks), refs, "fp16")
            safety["onnxruntime_parity"] = ex.parity(ex.run_onnx(fp16_onnx, checks), refs, "fp16")
            sidecar["fp16_safety"] = safety
            kept = [k["node"] for k in safety["kept_fp32"]]
            verdict = f"kept fp32: {', '.join(kept)}" if kept else "every layer fits fp16"
            log(f"  fp16 safety: largest activation {safety['max_abs']:.4g} (fp16 max {ex.FP16_MAX:.0f}, "
                f"limit {safety['limit']:.0f}); {verdict}")
            log(f"  fp16 ONNX (fp16 storage emulated) vs PyTorch: {ex.describe_parity(safety['parity'])}")
            if not safety["parity"]["ok"]:
                raise SrganError(f"the fp16 graph does not match PyTorch: {safety['parity']['worst']}")
            if graph == "fp16":
                source = fp16_onnx
        if graph == "int8":
            int8_onnx = tmp / "model.int8.onnx"
            sidecar["quantization"] = _quantize_cached(spec, fp32_onnx, int8_onnx, calib, folder.parent, log)
            source = int8_onnx
        art_path = tmp / ARTIFACT_FILES[spec.target]
        if spec.target == "tensorrt":
            from srgan_fast.engines import tensorrt_engine

            sidecar["tensorrt"] = tensorrt_engine.build_engine(
                source, art_path, spec.shapes, timing_cache=folder.parent / "tensorrt-timing.cache",
                device=spec.device, allow_tf32=graph != "fp32", log=log)
        elif source != art_path:
            shutil.copyfile(source, art_path)
        sidecar["artifact"] = {"file": art_path.name, "bytes": art_path.stat().st_size,
                               "sha256": _file_sha256(art_path), "graph_source": source.name}
        art = Artifact(path=art_path, sidecar=sidecar, built=True)
        engine = open_engine_for(art)
        try:
            if art.shapes_enforced:  # the check images must fit the profile
                fitted = [_fit(x, spec.shapes) for x in checks]
                if any(a.shape != b.shape for a, b in zip(fitted, checks)):
                    checks, checks_desc = fitted, checks_desc + f" cut to the profile ({spec.shapes})"
                    refs = ex.reference_outputs(g, checks)
            outs = [engine(x).cpu() for x in checks]
            sidecar["parity"] = ex.parity(outs, refs, run_precision)
            sidecar["parity_images"] = checks_desc
            sidecar["engine_info"] = engine.info()
            log(f"  {spec.target} {run_precision} vs PyTorch fp32: {ex.describe_parity(sidecar['parity'])}")
            if not sidecar["parity"]["ok"]:
                raise SrganError(f"{spec.target} {run_precision} does not match PyTorch within the tolerance "
                                 f"table: {sidecar['parity']['worst']}")
            if run_precision == "int8":
                gate = int8_gate(engine, g, spec.calib)
                sidecar["quality_gate"] = gate
                log(f"  int8 quality gate: {describe_gate(gate)}")
                if not gate["ok"]:
                    msg = (f"INT8 loses more than {INT8_GATE_DB} dB Y-PSNR against fp32 "
                           f"({describe_gate(gate)}); try other --calib images")
                    if spec.strict:
                        raise SrganError(msg + " (refused: --strict)")
                    log("  WARNING: " + msg)
        finally:
            engine.close()
        keep = {art_path, source} if spec.target == "tensorrt" else {art_path}
        for f in tmp.iterdir():  # intermediates are recorded in the sidecar, not kept
            if f not in keep:
                f.unlink()
        sidecar["build_seconds"] = round(time.perf_counter() - t0, 1)
        sidecar["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        _write_json(sidecar_path(art_path), sidecar)
        _publish(tmp, folder, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    art = read_artifact(folder / ARTIFACT_FILES[spec.target])
    art.built = True
    return art


def _export_cached(spec: BuildSpec, g, dst: Path, cache: Path, log) -> Path | None:
    """Export the fp32 graph once per model and toolchain; every target and precision starts
    from it. The copy is re-checked against PyTorch by every build that uses it. Returns the
    cached file when it was reused (None when freshly exported)."""
    from . import export as ex

    ident = json.dumps([spec.model.sha256, FORMAT_VERSION, ex.DEFAULT_OPSET, torch.__version__,
                        _version("onnx"), _version("onnxscript")])
    stored = cache / "exports" / f"{spec.model.sha256[:16]}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}.onnx"
    if not stored.is_file():
        log("  exporting ONNX (BN folded, output mapping inside, dynamic batch/height/width)")
        stored.parent.mkdir(parents=True, exist_ok=True)
        ex.export_onnx(g, stored, metadata={"srgan_fast.model_sha256": spec.model.sha256})
        shutil.copyfile(stored, dst)
        return None
    log(f"  ONNX export from the cache ({stored.name})")
    shutil.copyfile(stored, dst)
    return stored


def _quantize_cached(spec: BuildSpec, fp32_onnx: Path, dst: Path, calib, cache: Path, log) -> dict:
    """NNCF quantization once per model, calibration set and toolchain (OpenVINO, ONNX Runtime
    and TensorRT INT8 builds all start from the same Q/DQ graph)."""
    from . import export as ex

    ident = json.dumps([spec.model.sha256, FORMAT_VERSION, spec.env["calib"], _version("nncf"),
                        _version("onnx"), torch.__version__])
    stored = cache / "exports" / f"{spec.model.sha256[:16]}-int8-{hashlib.sha256(ident.encode()).hexdigest()[:12]}.onnx"
    report_file = Path(str(stored) + ".json")
    if stored.is_file() and report_file.is_file():
        try:
            report = json.loads(report_file.read_text())
            if report.get("sha256") == _file_sha256(stored):
                log(f"  INT8 Q/DQ graph from the cache ({stored.name})")
                shutil.copyfile(stored, dst)
                return report
        except (OSError, ValueError):
            pass
        log(f"  cached INT8 graph {stored.name} is damaged; quantizing again")
    log("  quantizing with NNCF (symmetric, per-channel weights, Q/DQ)")
    stored.parent.mkdir(parents=True, exist_ok=True)
    report = ex.quantize_int8(fp32_onnx, dst, calib)
    report["sha256"] = _file_sha256(dst)
    tmp = stored.with_name(f".{stored.name}.{os.getpid()}")
    shutil.copyfile(dst, tmp)
    os.replace(tmp, stored)
    _write_json(report_file, report)
    return report


def _fit(x: torch.Tensor, shapes: ShapeProfile) -> torch.Tensor:
    """Crop (or edge-pad) an NCHW image into the profile's height/width range."""
    h, w = x.shape[-2:]
    th = min(max(h, shapes.min[1]), shapes.max[1])
    tw = min(max(w, shapes.min[2]), shapes.max[2])
    x = x[..., :th, :tw]
    if x.shape[-2] < th or x.shape[-1] < tw:
        x = torch.nn.functional.pad(x, (0, tw - x.shape[-1], 0, th - x.shape[-2]), mode="replicate")
    return x.contiguous()


def _write_json(path: Path, data: dict) -> None:
    def default(o):
        if isinstance(o, float):
            return o
        if isinstance(o, (Path, tuple)):
            return str(o) if isinstance(o, Path) else list(o)
        return str(o)

    text = json.dumps(data, indent=2, default=default, allow_nan=True)
    path.write_text(text + "\n")


def _publish(tmp: Path, folder: Path, replace: bool) -> None:
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


# ---------------------------------------------------------------------------------------------
# INT8 quality gate
# ---------------------------------------------------------------------------------------------

def gate_sets(calib=None) -> tuple[dict[str, list[tuple[torch.Tensor, "object"]]], str]:
    """{set name: [(lr NCHW float, hr uint8 HWC)]} for the INT8 gate, and where they come from.

    Set5 and Set14 with their standard LR inputs when the shared data exist; otherwise the
    --calib images (or synthetic ones) taken as HR and downscaled with MATLAB bicubic.
    """
    import numpy as np

    from .export import shared_data_dir, synthetic_images
    from .imageio import list_images, read_image, to_uint8
    from .imresize import imresize, modcrop

    def hr_u8(t):
        return to_uint8(t).permute(1, 2, 0).numpy()

    shared = shared_data_dir()
    if shared is not None and calib is None:
        sets = {}
        for name in ("Set5", "Set14"):
            if not (shared / f"{name}_LRx4").is_dir():
                continue
            pairs = []
            for f in list_images(shared / name):
                lr = read_image(shared / f"{name}_LRx4" / f.name).rgb[None]
                hr = hr_u8(read_image(f).rgb)[: lr.shape[-2] * 4, : lr.shape[-1] * 4]
                pairs.append((lr, hr))
            sets[name] = pairs
        if sets:
            return sets, "standard LR inputs"
    if calib is not None:
        hrs = [modcrop(hr_u8(read_image(f).rgb), 4) for f in list_images(calib)[:8]]
        hrs = [h for h in hrs if min(h.shape[:2]) >= 64]
        source = "--calib images as HR, bicubic x1/4"
    else:
        hrs = []
    if not hrs:
        hrs = [hr_u8(t[0]) for t in synthetic_images(4, (192, 192), seed=7)]
        source = "synthetic images as HR, bicubic x1/4"
    pairs = [(torch.from_numpy(np.ascontiguousarray(imresize(h, 0.25))).permute(2, 0, 1).float()[None] / 255, h)
             for h in hrs]
    return {"eval": pairs}, source


def int8_gate(engine, generator, calib=None) -> dict:
    """Mean Y-PSNR (vs HR) of the INT8 engine and of the fp32 PyTorch reference, per set."""
    from . import tiling
    from .imageio import to_uint8
    from .metrics import psnr_y

    sets, source = gate_sets(calib)
    g = generator.eval().float()
    out = {"limit_db": INT8_GATE_DB, "source": source, "sets": {}}
    for name, pairs in sets.items():
        ref_db, q_db = [], []
        for lr, hr in pairs:
            with torch.inference_mode():
                ref = g(lr)
            q = tiling.upscale(engine, lr, out_device=torch.device("cpu"))
            ref_db.append(psnr_y(to_uint8(ref[0]).permute(1, 2, 0).numpy(), hr))
            q_db.append(psnr_y(to_uint8(q[0]).permute(1, 2, 0).numpy(), hr))
        fp32, int8 = sum(ref_db) / len(ref_db), sum(q_db) / len(q_db)
        out["sets"][name] = {"images": len(pairs), "fp32_db": fp32, "int8_db": int8, "loss_db": fp32 - int8,
                             "worst_image_loss_db": max(r - q for r, q in zip(ref_db, q_db))}
    out["ok"] = all(s["loss_db"] <= INT8_GATE_DB for s in out["sets"].values())
    return out

