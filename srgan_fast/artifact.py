"""The artifact record: what a built engine file is, read and verified from its JSON sidecar here only.

An artifact is one folder holding the file a backend runs (an ONNX graph for OpenVINO and ONNX
Runtime, a serialized engine for TensorRT) and a sidecar ``<file>.json`` beside it: model
identity, precision asked and precision that runs, target, device, library versions, shape
profile, and the build's parity and quality reports. ``read_record`` is the one loader: it checks
the file's size and sha256 and the sidecar's own integrity hash (over every field, so an edited
receptive-field radius, precision or shape profile is refused like a modified file) and returns a
typed ``ArtifactRecord``. Runtime backends import this module, never the build.

Torch-free on purpose: the TensorRT runner for deployment boxes uses it with numpy and pycuda only.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .digest import file_sha256
from .errors import SrganError

FORMAT = "srgan_fast.artifact"
# Bump when the way artifacts are made changes (export, conversion, sidecar layout): every
# artifact made before becomes stale and is rebuilt. 3: sidecar integrity hash, model name.
FORMAT_VERSION = 3
TARGETS = ("openvino", "onnxruntime", "tensorrt")
ARTIFACT_FILES = {"openvino": "model.onnx", "onnxruntime": "model.onnx", "tensorrt": "model.engine"}


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


def _dims(text: str) -> tuple[int, int, int]:
    try:
        dims = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) == 2:
        dims = (1, *dims)
    if len(dims) != 3 or min(dims) < 1:
        raise SrganError(f"--shapes: cannot read {text!r} (want NxHxW or HxW, positive)")
    return dims


def parse_shapes(spec: str | None) -> ShapeProfile | None:
    """``MIN:OPT:MAX`` with each ``NxHxW`` or ``HxW`` (batch 1), or a single size (used as opt
    and max, min 1x1x1). None/empty gives None (the target's default)."""
    if not spec:
        return None
    parts = [_dims(p) for p in spec.split(":")]
    if len(parts) == 1:
        parts = [(1, 1, 1), parts[0], parts[0]]
    if len(parts) != 3:
        raise SrganError(f"--shapes: want MIN:OPT:MAX or one size, got {spec!r}")
    lo, opt, hi = parts
    if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
        raise SrganError(f"--shapes: need min <= opt <= max in every dimension, got {spec!r}")
    return ShapeProfile(lo, opt, hi)


@dataclass(frozen=True)
class ModelInfo:
    sha256: str
    path: str | None
    name: str | None          # shipped model name (srresnet, srgan) or None for a user's file
    num_blocks: int
    channels: int
    output_mapping: str
    radius: int               # receptive-field radius in LR pixels: the tiler's overlap


@dataclass
class ArtifactRecord:
    """A verified artifact: typed fields for what runs, ``sidecar`` for the build's reports."""

    path: Path                # the file the backend runs
    target: str
    device: str               # human-readable
    device_id: str
    torch_device: str
    precision_requested: str
    precision: str            # what runs
    precision_note: str
    graph: str
    model: ModelInfo
    shapes: ShapeProfile
    shapes_enforced: bool     # False: recorded only (the backend takes any size)
    libraries: dict
    key: str
    format_version: int
    sidecar: dict
    built: bool = False       # True when this call built it (False: loaded from the cache)

    @property
    def requested_precision(self) -> str:
        return self.precision_requested

    @classmethod
    def from_sidecar(cls, path: Path, sc: dict) -> "ArtifactRecord":
        try:
            m, shapes = sc["model"], sc["shapes"]
            model = ModelInfo(str(m["sha256"]), m.get("path"), m.get("name"), int(m["num_blocks"]),
                              int(m["channels"]), str(m["output_mapping"]), int(m["radius"]))
            return cls(path=Path(path), target=sc["target"], device=sc["device"], device_id=sc["device_id"],
                       torch_device=sc.get("torch_device", "cpu"), precision_requested=sc["precision_requested"],
                       precision=sc["precision"], precision_note=sc.get("precision_note", ""), graph=sc["graph"],
                       model=model, shapes=ShapeProfile.from_dict(shapes),
                       shapes_enforced=bool(shapes.get("enforced", True)), libraries=dict(sc["libraries"]),
                       key=sc["key"], format_version=int(sc["format_version"]), sidecar=sc)
        except (KeyError, TypeError, ValueError) as e:
            raise SrganError(f"{sidecar_path(path)}: sidecar lacks or garbles a field "
                             f"({e.__class__.__name__}: {e}); rebuild with --rebuild") from None


def sidecar_path(artifact_path) -> Path:
    return Path(str(artifact_path) + ".json")


def integrity_hash(sidecar: dict) -> str:
    """sha256 of the canonical JSON of every sidecar field but ``integrity`` itself."""
    body = {k: v for k, v in sidecar.items() if k != "integrity"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     allow_nan=True, default=str).encode()).hexdigest()


def seal(sidecar: dict) -> dict:
    """Add the integrity hash (the last step of a build before the sidecar is written)."""
    sidecar.pop("integrity", None)
    sidecar["integrity"] = {"sha256": integrity_hash(sidecar), "covers": "every other field of this file"}
    return sidecar


def _locate(path: Path) -> tuple[Path, Path]:
    """(artifact file, sidecar) of an artifact file or folder."""
    if path.is_dir():
        sidecars = sorted(p for p in path.glob("*.json") if not p.name.startswith("."))
        if len(sidecars) != 1:
            raise SrganError(f"{path}: not a srgan_fast artifact folder (expected one sidecar .json, "
                             f"found {len(sidecars)})")
        side = sidecars[0]
        return side.with_name(side.name[: -len(".json")]), side
    return path, sidecar_path(path)


def _load_sidecar(path: Path, side: Path) -> dict:
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
    return sidecar


def read_record(path) -> ArtifactRecord:
    """Open an artifact by its file or folder and verify it: file size and sha256 as recorded,
    and (current format) the sidecar's integrity hash. Corrupt, edited or foreign artifacts raise
    a one-line SrganError; this never returns what it cannot verify. An older format is returned
    unsealed for ``staleness`` to report (it is rebuilt, never run)."""
    path, side = _locate(Path(path))
    sidecar = _load_sidecar(path, side)
    rec = sidecar.get("artifact") or {}
    if rec.get("file") != path.name:
        raise SrganError(f"{side}: describes {rec.get('file')!r}, not {path.name!r}")
    size = path.stat().st_size
    if size != rec.get("bytes"):
        raise SrganError(f"{path}: corrupt artifact: {size} bytes, the sidecar records {rec.get('bytes')} "
                         f"(truncated or replaced); rebuild with --rebuild")
    if file_sha256(path) != rec.get("sha256"):
        raise SrganError(f"{path}: corrupt artifact: sha256 does not match its sidecar (modified); "
                         f"rebuild with --rebuild")
    if sidecar.get("format_version") == FORMAT_VERSION:
        stored = (sidecar.get("integrity") or {}).get("sha256")
        if stored != integrity_hash(sidecar):
            raise SrganError(f"{side}: sidecar fields were edited after the build (integrity hash "
                             f"{'missing' if not stored else 'mismatch'}); rebuild with --rebuild")
    record = ArtifactRecord.from_sidecar(path, sidecar)
    if record.target not in TARGETS:
        raise SrganError(f"{path}: unknown target {record.target!r} in its sidecar")
    return record


# ---------------------------------------------------------------------------------------------
# Does an intact artifact fit this machine?
# ---------------------------------------------------------------------------------------------

def dist_version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def library_versions(target: str, precision: str) -> dict:
    """The versions that decide what an artifact of ``target`` computes (part of its key)."""
    from . import __version__

    v = {"srgan_fast": __version__, "artifact_format": FORMAT_VERSION, "torch": dist_version("torch"),
         "onnx": dist_version("onnx")}
    candidates = {"openvino": ["openvino"], "onnxruntime": ["onnxruntime", "onnxruntime-gpu"],
                  "tensorrt": ["tensorrt", "tensorrt-cu12", "tensorrt-cu13"]}[target]
    v[target] = next((ver for ver in map(dist_version, candidates) if ver), "missing")
    if precision == "int8":
        v["nncf"] = dist_version("nncf")
    return v


def target_device(target: str, device: str | None = None) -> str:
    """``cpu`` or ``cuda[:i]``: where ``target`` runs (one line when this machine cannot)."""
    from .hardware import cuda_available

    if target == "tensorrt":
        if not cuda_available():
            raise SrganError("the tensorrt target needs an NVIDIA GPU with CUDA; none is visible here "
                             "(use --target openvino on the CPU)")
        return device if device and device.startswith("cuda") else "cuda:0"
    if target == "onnxruntime" and device and device.startswith("cuda"):
        if not cuda_available():
            raise SrganError(f"device {device} asked for onnxruntime, but no CUDA GPU is visible here")
        return device
    if target == "openvino" and device not in (None, "cpu"):
        raise SrganError(f"the openvino target here runs on the CPU (got device {device!r})")
    return "cpu"


def environment(target: str, precision: str, device: str) -> dict:
    """This machine as an artifact key sees it: device, device identity, library versions."""
    from .hardware import device_identity

    name, ident = device_identity(device)
    return {"device": name, "device_id": ident, "libraries": library_versions(target, precision)}


def staleness(record: ArtifactRecord, env: dict, model_sha256: str | None = None) -> list[str]:
    """Why an intact artifact does not fit ``env`` (empty: it fits)."""
    reasons = []
    if record.format_version != FORMAT_VERSION:
        reasons.append(f"artifact format {record.format_version} (now {FORMAT_VERSION})")
    if model_sha256 and record.model.sha256 != model_sha256:
        reasons.append("built from other weights")
    if record.device_id != env["device_id"]:
        reasons.append(f"built for {record.device_id!r}, this is {env['device_id']!r}")
    changed = [f"{k} {record.libraries.get(k)} -> {v}" for k, v in env["libraries"].items()
               if record.libraries.get(k) != v]
    if changed:
        reasons.append("library versions changed: " + ", ".join(changed))
    return reasons
