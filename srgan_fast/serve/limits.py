"""The limits that protect the service, and the recipe for the engines its replicas open.

Everything a request may cost is bounded here: the bytes read (``max_body``), the pixels decoded
(``max_pixels``, checked from the header before decoding), the time it may take (``timeout_s``),
how many requests a replica holds (``max_ongoing``) and how many wait at each caller
(``max_queued``: beyond that the answer is 503 at once, never an unbounded queue), and the
memory a replica's work may use (``memory_budget``). Both objects are small and picklable: Ray
ships them to the replicas.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from ..errors import SrganError
from ..image.read import MAX_INPUT_PIXELS

MiB = 2 ** 20
# Output formats a request may ask for (query ``format``), as output file extensions.
OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp", "tif": ".tif",
                  "tiff": ".tif", "bmp": ".bmp"}
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp", ".tif": "image/tiff",
               ".bmp": "image/bmp"}


@dataclass(frozen=True)
class Limits:
    max_body: int = 32 * MiB          # bytes of one upload, counted while reading
    max_pixels: int = 4_000_000       # input pixels (the output has 16x as many)
    timeout_s: float = 120.0          # one request, end to end; a request may ask for less
    max_ongoing: int = 8              # requests one replica holds (serve: max_ongoing_requests)
    max_queued: int = 16              # requests waiting at each caller (serve: max_queued_requests)
    max_batch: int = 4                # small images per engine call (serve.batch)
    batch_wait_s: float = 0.01        # how long a batch waits to fill
    memory_budget: int | None = None  # bytes per replica; None: the CLI's default tile budget
    retry_after_s: int = 1            # the Retry-After a 503 suggests

    def check(self) -> "Limits":
        """One-line errors for settings that cannot work (the CLI's options end here)."""
        if self.max_body < 1024:
            raise SrganError(f"--max-body-mb must allow at least 1 KiB, got {self.max_body} bytes")
        if not 1 <= self.max_pixels <= MAX_INPUT_PIXELS:
            raise SrganError(f"--max-pixels must be in 1..{MAX_INPUT_PIXELS:,} (the readers' "
                             f"decompression-bomb limit), got {self.max_pixels:,}")
        if not self.timeout_s > 0:
            raise SrganError(f"--timeout must be positive, got {self.timeout_s:g}")
        if self.max_batch < 1 or self.max_queued < 0:
            raise SrganError("--max-batch must be >= 1 and --max-queued >= 0")
        if self.max_ongoing < self.max_batch:
            raise SrganError(f"--max-ongoing ({self.max_ongoing}) must be at least --max-batch "
                             f"({self.max_batch}): a batch is made of requests a replica holds")
        if self.memory_budget is not None and self.memory_budget < 64 * MiB:
            raise SrganError(f"--memory-budget must be at least 64 MiB, got {self.memory_budget // MiB}")
        return self

    def frontend_capacity(self, replicas: int) -> int:
        """Uploads the ingress admits at once: every replica's work and queue, plus room; past it
        the ingress answers 503 itself, before reading the body."""
        return 2 * replicas * (self.max_ongoing + self.max_queued) + 8

    def public(self) -> dict:
        """What a client may know (GET /v1/info)."""
        return {"max_body_bytes": self.max_body, "max_input_pixels": self.max_pixels,
                "timeout_s": self.timeout_s, "max_batch": self.max_batch}


@dataclass(frozen=True)
class EngineRecipe:
    """How a replica opens its engines: one per served model, the CLI's backend/precision rules.

    ``opener`` (tests) replaces the real engines: a picklable ``opener(variant) -> Engine``, the
    variant being a model name or ``srgan@DETAIL``."""

    backend: str = "auto"
    precision: str = "fp32"
    models: tuple[str, ...] = ()      # served model names (default: every shipped model)
    default_model: str | None = None
    threads: int | None = None        # CPU threads per replica
    opener: object = field(default=None, compare=False)
    # --detail levels of the srgan model a request may ask for (each is an engine per replica;
    # 0 is the srresnet's weights), and the level of a request that asks for none
    details: tuple[float, ...] = ()
    default_detail: float | None = None

    def __post_init__(self):
        from ..checkpoints import DEFAULT_MODEL, MODELS
        from ..detail import DEFAULT_DETAIL, check_detail

        if not self.models:
            object.__setattr__(self, "models", tuple(MODELS))
        if self.default_model is None:
            default = DEFAULT_MODEL if DEFAULT_MODEL in self.models else self.models[0]
            object.__setattr__(self, "default_model", default)
        if self.default_model not in self.models:
            raise SrganError(f"--model {self.default_model} is not one of the served models "
                             f"({', '.join(self.models)})")
        default = check_detail(DEFAULT_DETAIL if self.default_detail is None else self.default_detail)
        levels = tuple(sorted({check_detail(d) for d in self.details} | {default}))
        object.__setattr__(self, "default_detail", default)
        object.__setattr__(self, "details", levels if "srgan" in self.models else ())

    def detail_info(self) -> dict | None:
        """The levels a request may ask for (GET /v1/info; the page's slider), None without srgan."""
        if not self.details:
            return None
        return {"min": self.details[0], "max": self.details[-1], "default": self.default_detail,
                "levels": list(self.details), "model": "srgan"}

    def variant(self, model: str, detail: float | None = None) -> str:
        """The name of the engine a request runs on: the model, and for srgan its detail level."""
        if model != "srgan" or not self.details:
            return model
        return f"srgan@{self.default_detail if detail is None else detail:g}"

    def variants(self) -> list[str]:
        return [v for m in self.models for v in ([self.variant(m, d) for d in self.details]
                                                  if m == "srgan" and self.details else [m])]

    def spec(self, variant: str):
        """How to open a variant's engine; variants with the same weights (srgan@0 is the
        srresnet's file, srgan@1 the srgan's) get equal specs, so a replica opens them once."""
        from ..detail import resolve_weights
        from ..jobs.engine_spec import EngineSpec

        model, _, level = variant.partition("@")
        detail = float(level) if level else None
        weights = resolve_weights(model, None, detail)
        blend = detail is not None and 0 < detail < 1  # only a blend is remade where it is missing
        return EngineSpec(backend=self.backend, precision=self.precision, weights=str(weights),
                          detail=detail if blend else None, threads=self.threads)

    def pinned(self) -> "EngineRecipe":
        """``auto`` decided once, before the replicas start (and said in one line), so every
        replica runs the same precision."""
        if self.opener is not None:
            return self
        return replace(self, precision=self.spec(self.variant(self.default_model)).pinned().precision)

    def prepare(self) -> None:
        """Build the CPU backends' artifacts once, before the replicas start (each would
        otherwise build the same one)."""
        if self.opener is None:
            for variant in self.variants():
                self.spec(variant).prepare()

    def open(self, variant: str):
        """The engine of a variant (``variants()``): a model, srgan at a detail level."""
        if self.opener is not None:
            return self.opener(variant)
        return self.spec(variant).open()


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
