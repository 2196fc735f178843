"""What a build makes: the weights, target, precision plan, shapes, calibration and machine.

``BuildSpec.key()`` hashes every input that changes the artifact (weights, model name, target,
precision, device identity, library versions, shapes, calibration identity), so changing any of
them gives a new cache folder and a fresh build; an old folder is simply never looked up.
``auto`` is resolved first (``precision.resolve``), so the key, the folder name and the sidecar
hold the precision actually built, and ``auto`` shares the artifact of that precision.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..artifact import DEFAULT_SHAPES, FORMAT_VERSION, TARGETS, ShapeProfile, environment, parse_shapes, \
    target_device
from ..errors import SrganError
from ..precision import Choice, Plan, plan, resolve


def resolve_target(target: str = "auto") -> str:
    """``auto``: the one auto-selection (hardware.auto_backend) among the artifact targets."""
    from ..hardware import auto_backend

    if target == "auto":
        chosen = auto_backend(TARGETS)
        if chosen is None:
            raise SrganError("no build target is installed: pip install 'srgan_fast[cpu]' "
                             "(OpenVINO and ONNX Runtime)")
        return chosen
    if target not in TARGETS:
        raise SrganError(f"unknown target {target!r} (choose from auto, {', '.join(TARGETS)})")
    return target


def _generator_sha256(g) -> str:
    h = hashlib.sha256()
    h.update(f"{g.num_blocks}/{g.channels}/{g.output_mapping}".encode())
    for k, v in sorted(g.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()


@dataclass
class ModelRef:
    """The weights an artifact is built from: a file (None = the default model) or a Generator."""

    sha256: str
    path: str | None
    name: str | None = None
    _generator: object = None

    @classmethod
    def resolve(cls, weights, model: str | None = None, detail: float | None = None) -> "ModelRef":
        from ..checkpoints import model_name
        from ..detail import resolve_weights
        from ..model import Generator

        if isinstance(weights, Generator):
            return cls(_generator_sha256(weights), None, None, weights)
        path = resolve_weights(model, weights, detail)
        if not path.is_file():
            raise SrganError(f"{path}: no such weights file")
        from ..digest import file_sha256

        return cls(file_sha256(path), str(path.resolve()), model_name(path))

    def generator(self):
        if self._generator is None:
            from ..checkpoints import load_generator

            self._generator = load_generator(self.path)
        return self._generator.eval()


def _calib_fingerprint(calib) -> str:
    """Identity of a --calib folder: its image names, sizes and times (content-sensitive enough)."""
    from ..eval.datasets import calib_folder
    from ..image.read import list_images

    folder = calib_folder(calib)
    h = hashlib.sha256(str(folder.resolve()).encode())
    for f in list_images(folder):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


@dataclass
class BuildSpec:
    model: ModelRef
    target: str
    plan: Plan
    device: str
    shapes: ShapeProfile
    shapes_given: bool
    calib: Path | None
    strict: bool = False
    env: dict = field(default_factory=dict)
    choice: Choice | None = None   # how ``auto`` chose the precision (None: it was asked)

    @property
    def precision(self) -> str:  # asked
        return self.plan.asked

    @property
    def shapes_enforced(self) -> bool:
        return self.target == "tensorrt" or self.shapes_given

    def key(self) -> str:
        ident = {"format": FORMAT_VERSION, "model": self.model.sha256, "model_name": self.model.name,
                 "target": self.target, "precision": self.precision, "device_id": self.env["device_id"],
                 "libraries": self.env["libraries"], "shapes": self.shapes.as_dict(),
                 "shapes_given": self.shapes_given, "calib": self.env["calib"]}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def uses_calibration(precision: str) -> bool:
    """Calibration shapes the graph only for int8 (scales) and fp16 (the overflow check)."""
    return precision in ("int8", "fp16")


def make_spec(weights=None, precision: str = "fp32", target: str = "auto", shapes=None, calib=None,
              device: str | None = None, strict: bool = False, model: str | None = None,
              detail: float | None = None) -> BuildSpec:
    target = resolve_target(target)
    device = target_device(target, device)
    from ..fp16_range import fits

    # the generator actually built (a --detail blend included); loaded only where it decides (a GPU)
    precision, choice = resolve(target, precision, device,
                                lambda: fits(ModelRef.resolve(weights, model, detail).generator()))
    the_plan = plan(target, precision, device)  # an impossible combination fails here, in one line
    if calib is not None and not uses_calibration(precision):
        raise SrganError(f"--calib is used by fp16 and int8 builds only (calibration sets INT8 scales and "
                         f"the fp16 overflow check); a {precision} build does not read it: drop --calib")
    if isinstance(shapes, str):
        shapes = parse_shapes(shapes)
    ref = ModelRef.resolve(weights, model, detail)
    env = environment(target, precision, device)
    env["calib"] = None
    if uses_calibration(precision):
        from ..eval.datasets import calibration_source

        env["calib"] = _calib_fingerprint(calib) if calib is not None else f"default-{calibration_source()}"
    return BuildSpec(model=ref, target=target, plan=the_plan, device=device, shapes=shapes or DEFAULT_SHAPES,
                     shapes_given=shapes is not None, calib=Path(calib) if calib else None, strict=strict,
                     env=env, choice=choice)
