"""How to open the job's engine in another process: a small picklable recipe."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class EngineSpec:
    backend: str = "auto"
    precision: str = "fp32"            # as asked: "auto" is resolved where the engine opens
    weights: str | None = None         # weights file (None: the shipped default)
    detail: float | None = None        # --detail of the shipped srgan: made again where missing
    artifact: str | None = None        # a built artifact (--engine) instead of backend+weights
    device: str | None = None          # e.g. cuda:1; None: the backend's default
    threads: int | None = None         # CPU threads for this engine

    @classmethod
    def from_args(cls, args) -> "EngineSpec":
        from ..detail import resolve_weights
        from ..errors import SrganError

        artifact = getattr(args, "engine", None)
        weights = detail = None
        if not artifact:
            detail = getattr(args, "detail", None)
            weights = str(resolve_weights(getattr(args, "model", None), getattr(args, "weights", None), detail))
        path = Path(artifact or weights)
        if not path.exists():       # before any worker starts: one line, not one per worker
            raise SrganError(f"{path}: no such {'engine artifact' if artifact else 'weights file'}")
        from ..precision import DEFAULT_PRECISION

        return cls(backend=args.backend or "auto", precision=args.precision or DEFAULT_PRECISION,
                   weights=weights, detail=detail, artifact=str(artifact) if artifact else None)

    def weights_here(self) -> str | None:
        """The weights file in this process: a --detail blend lives in the cache of the machine
        that made it, so a Ray worker on another node makes its own (same weights, same hash)."""
        if self.weights and self.detail is not None and not Path(self.weights).is_file():
            from ..detail import resolve_weights
            return str(resolve_weights("srgan", None, self.detail))
        return self.weights

    def on(self, device: str | None, threads: int | None) -> "EngineSpec":
        return replace(self, device=device, threads=threads)

    def pin(self) -> tuple["EngineSpec", str]:
        """``auto`` decided once, here, for every worker: they all ask the same precision (the one
        the manifest records as running), whichever machine of a cluster they land on. Returns
        the pinned spec and the line that says the choice ('' when nothing was chosen)."""
        from ..precision import AUTO

        if self.precision != AUTO or self.artifact:
            return self, ""
        backend, precision, choice = self.choice()
        return replace(self, precision=precision), f"engine: {backend} {precision} ({choice.line})"

    def pinned(self) -> "EngineSpec":
        """``pin()``, saying the choice now."""
        spec, line = self.pin()
        if line:
            say(line)
        return spec

    def choice(self):
        """(backend, precision to ask, auto's ``Choice`` or None) for this spec on this machine."""
        from .. import engines
        from ..fp16_range import fits
        from ..precision import resolve

        backend = engines.default_backend() if self.backend == "auto" else self.backend
        device = engines.engine_device(backend, self.device)
        precision, choice = resolve(backend, self.precision, device, lambda: fits(self.weights_here()))
        return backend, precision, choice

    def runs(self) -> str:
        """The precision that runs (not the one asked: ``auto``, or fp16 on a CPU, name another)."""
        if self.artifact:
            from ..artifact import read_record

            return read_record(self.artifact).precision
        from .. import engines
        from ..precision import plan

        backend, precision, _ = self.choice()
        return plan(backend, precision, engines.engine_device(backend, self.device)).runs

    def same_precision(self, recorded) -> bool:
        """Whether parts made at ``recorded`` (a manifest's precision: what ran; manifests made
        before ``auto`` hold what was asked) are what this spec runs, so a resume may keep them."""
        if self.artifact:          # its file's sha256 (model_sha256) fixes the precision it runs
            return True
        from .. import engines
        from ..errors import SrganError
        from ..precision import plan

        backend = engines.default_backend() if self.backend == "auto" else self.backend
        try:
            return plan(backend, recorded, engines.engine_device(backend, self.device)).runs == self.runs()
        except (SrganError, TypeError):
            return False

    def identity(self) -> dict:
        """What about the engine changes the output bytes (for a job's manifest): the precision
        is the one that runs, so ``auto`` is recorded as what it chose here."""
        from ..digest import file_sha256

        path = self.artifact or self.weights
        ident = {"backend": self.backend, "precision": self.runs()}
        if path and Path(path).is_file():
            ident["model_sha256"] = file_sha256(path)
            from ..checkpoints import model_name
            ident["model"] = model_name(path) or Path(path).name
        elif path:
            ident["model"] = str(path)
        return ident

    def prepare(self) -> None:
        """Build a CPU backend's artifact once, here, before the workers start: they then find it
        in the cache instead of each building the same artifact (the slow part of opening)."""
        from .. import engines

        backend = engines.default_backend() if self.backend == "auto" else self.backend
        if self.artifact or backend not in ("openvino", "onnxruntime") or \
                (self.device or "cpu").startswith("cuda"):
            return
        from ..build.pipeline import ensure_artifact

        ensure_artifact(self.weights_here(), self.choice()[1], backend)

    def open(self):
        """Open the engine in this process, with its device and thread count."""
        from .. import engines

        if self.threads:
            import torch
            torch.set_num_threads(self.threads)
        options = {}
        if self.device:
            options["device"] = self.device
        if self.artifact:          # its sidecar names the backend; thread options vary by one
            return engines.load_artifact(self.artifact, **options)
        backend = engines.default_backend() if self.backend == "auto" else self.backend
        if self.threads and backend == "openvino":
            options["threads"] = self.threads
        return engines.open_engine(backend, self.precision, weights=self.weights_here(), **options)


def check_devices(devs: list[str], text: str = "") -> None:
    """Every device named exists here: ``cpu``, ``cuda`` or ``cuda:N`` with N below the GPU count
    (a missing GPU is an error, never a silent run on the CPU)."""
    import re

    from ..errors import SrganError

    if not devs:
        raise SrganError(f"--devices {text!r} names no device (e.g. cpu, cuda:0 or cuda:0,cuda:1)")
    for d in devs:
        m = re.fullmatch(r"cuda(?::(\d+))?", d)
        if d != "cpu" and not m:
            raise SrganError(f"--devices: {d!r} is not a device (cpu, cuda or cuda:N)")
        if m:
            count = gpu_count()
            if int(m.group(1) or 0) >= count:
                have = "no CUDA GPU" if not count else \
                    f"{count} CUDA GPU{'s' if count > 1 else ''} (cuda:0..cuda:{count - 1})"
                raise SrganError(f"--devices: {d} does not exist, this machine has {have}")


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_slots(workers: int, devices: str | None) -> list[tuple[str | None, int | None]]:
    """(device, threads) for each worker: GPUs round-robin, else the CPU cores split evenly, at
    most one worker per core (more would only share the cores and multiply the memory)."""
    if devices:
        devs = [d.strip() for d in devices.split(",") if d.strip()]
    else:
        devs = [f"cuda:{i}" for i in range(gpu_count())]
    if devs and all(d.startswith("cuda") for d in devs):
        return [(devs[i % len(devs)], None) for i in range(workers)]
    cores = usable_cores()
    if workers > cores:
        say(f"note: --workers {workers} on {cores} CPU cores: running {cores} workers")
        workers = cores
    threads = max(1, cores // workers)
    return [(devs[i % len(devs)] if devs else None, threads) for i in range(workers)]


def say(msg: str) -> None:
    print(msg, file=sys.stderr)
