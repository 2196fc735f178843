"""The upscaling replica: one per GPU (or N on the CPU), each holding one engine per served model.

A request runs the CLI's own image path (``image.job.render``: small-side padding, exact tiles,
alpha, grey, 16-bit, then ``encode_canvas`` with the format's rules) in a worker thread, with
an engine stand-in (``_Routed``) between ``render`` and the real engine:

- small images (the whole frame fits a batch share of the memory budget) go through
  ``serve.batch``: frames of concurrent requests with the same model and size are stacked into
  one engine call (different sizes are never padded together: the output stays exactly the
  CLI's);
- larger ones are tiled within the other half of the budget, one such image at a time.

Every engine call runs on one engine thread, so the engine (not thread-safe) sees one call at a
time and the budget holds. Expected failures come back as a ``Reply`` with their HTTP status,
never as an exception, so bad input cannot take a replica down.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from ray import serve

from ..engines.base import Engine
from ..errors import SrganError
from ..image import tiling
from ..image.job import job_bytes, render, size_notes, small_side_padding, spec_for
from ..image.read import read_image_bytes
from ..image.write import encode_canvas
from ..model import SCALE
from .limits import MEDIA_TYPES, EngineRecipe, Limits
from .ray_local import keep_replica_on_loopback

log = logging.getLogger("ray.serve")


@dataclass
class Reply:
    """A replica's answer: the encoded image, or an HTTP status and message."""

    status: int
    body: bytes = b""
    media_type: str = ""
    width: int = 0
    height: int = 0
    notes: tuple[str, ...] = ()
    error: str = ""


class _Cancelled(Exception):
    """The request was cancelled (timeout or client gone): stop at the next engine call."""


class _Routed(Engine):
    """Stands in for the replica's engine inside ``render``: same attributes, but each call is
    batched (small images) or run on the engine thread (tiles of larger ones)."""

    def __init__(self, owner: "Upscaler", model: str, loop, cancel: threading.Event, batched: bool):
        real = owner.engines[model]
        for name in ("name", "precision", "requested_precision", "device", "torch_device", "shapes",
                     "bytes_per_lr_pixel", "radius"):
            setattr(self, name, getattr(real, name))
        self.owner, self.model, self.loop, self.cancel, self.batched = owner, model, loop, cancel, batched

    def _run(self, lr: torch.Tensor) -> torch.Tensor:
        if self.cancel.is_set():
            raise _Cancelled
        if self.batched:
            return asyncio.run_coroutine_threadsafe(self.owner._batch((self.model, lr)), self.loop).result()
        return self.owner._engine.submit(self.owner._call, self.model, lr).result()


@serve.deployment(name="Upscaler")
class Upscaler:
    def __init__(self, recipe: EngineRecipe, limits: Limits):
        keep_replica_on_loopback()
        self.recipe, self.limits = recipe, limits
        self.engines = {}
        by_spec = {}  # variants with the same weights (srgan@0 and srresnet) share one engine
        for v in recipe.variants():
            key = recipe.spec(v) if recipe.opener is None else v
            if key not in by_spec:
                by_spec[key] = recipe.open(v)
            self.engines[v] = by_spec[key]
        first = next(iter(self.engines.values()))
        budget = limits.memory_budget or tiling.default_budget(first.torch_device)
        # Half the budget for a batch of small frames, half for one large image's tiles and
        # canvas: the engine thread runs one of them at a time, so together they stay within it.
        self.job_budget = budget // 2
        per_pixel = max(e.bytes_per_lr_pixel for e in self.engines.values()) + tiling.ASSEMBLY_BYTES_PER_LR_PIXEL
        self.batch_pixels = int(self.job_budget * tiling.PLANNED_SHARE) // (limits.max_batch * per_pixel)
        self._batch.set_max_batch_size(limits.max_batch)
        self._batch.set_batch_wait_timeout_s(limits.batch_wait_s)
        self._engine = ThreadPoolExecutor(1, thread_name_prefix="engine")
        self._jobs = ThreadPoolExecutor(limits.max_ongoing, thread_name_prefix="job")
        self._large = threading.Semaphore(1)
        self.batch_sizes = collections.Counter()   # requests per serve.batch call
        self.engine_batches = collections.Counter()  # frames per engine call

    async def upscale(self, data: bytes, opts, size: tuple[int, int]) -> Reply:
        """Upscale one upload (already checked by the ingress); ``size`` is its header's (w, h)."""
        loop = asyncio.get_running_loop()
        cancel = threading.Event()
        try:
            return await loop.run_in_executor(self._jobs, self._job, data, opts, size, loop, cancel)
        except asyncio.CancelledError:
            cancel.set()  # the thread stops at its next engine call
            raise

    def _job(self, data: bytes, opts, size, loop, cancel) -> Reply:
        w, h = size
        py, px = small_side_padding(h, w)
        whole = opts.tile in (None, 0) or opts.tile >= max(h + 2 * py, w + 2 * px)
        small = whole and (h + 2 * py) * (w + 2 * px) <= self.batch_pixels
        try:
            if small:
                return self._render(data, opts, loop, cancel, batched=True)
            with self._large:  # one large image per replica: its canvas and tiles fill the budget
                if cancel.is_set():
                    raise _Cancelled
                return self._render(data, opts, loop, cancel, batched=False)
        except _Cancelled:
            return Reply(499, error="cancelled")
        except SrganError as e:
            return Reply(400, error=str(e))
        except Exception:  # a bug: logged here with its traceback, answered 500, the replica goes on
            log.exception("upscaling failed")
            return Reply(500, error="internal error (logged by the service)")

    def _render(self, data: bytes, opts, loop, cancel, batched: bool) -> Reply:
        img = read_image_bytes(data, "upload", self.limits.max_pixels)
        dst = Path("upload" + opts.ext)
        spec = spec_for(dst, img)
        engine = _Routed(self, self.recipe.variant(opts.model, opts.detail), loop, cancel, batched)
        if batched:
            canvas = render(engine, img, spec, dst, tile=0)
        else:
            tile = self._tile(engine, img, spec, dst, opts.tile)
            if isinstance(tile, Reply):
                return tile
            canvas = render(engine, img, spec, dst, tile=tile)
        body = encode_canvas(opts.ext, canvas, spec, img.meta)
        height, width = canvas.shape[:2]
        return Reply(200, body, MEDIA_TYPES[opts.ext], width, height,
                     spec.notes + size_notes(Path("upload"), img))

    def _tile(self, engine, img, spec, dst, asked: int | None):
        """The tile for a large image: the largest that fits the budget, or the one asked if it
        fits too. Counted like the CLI's job, plus the encoded output held in memory."""
        h, w = img.size
        py, px = small_side_padding(h, w)
        ph, pw = h + 2 * py, w + 2 * px
        fixed = job_bytes(spec, dst, ph, pw, canvases=2)
        try:
            plan = tiling.plan(engine, ph, pw, self.job_budget, fixed)
        except SrganError:
            need = (fixed + tiling.working_set(engine, ph, pw, tiling.MIN_TILE)) / 2**20
            return Reply(413, error=f"upload: a {w}x{h} image needs about {need:.0f} MiB, over this "
                                    f"replica's {self.job_budget / 2**20:.0f} MiB budget for one image")
        if asked is None or asked == plan.tile:
            return plan.tile
        if fixed + tiling.working_set(engine, ph, pw, asked) > self.job_budget * tiling.PLANNED_SHARE:
            most = "the whole image (tile=0)" if plan.tile == 0 else f"tile={plan.tile}"
            return Reply(400, error=f"tile={asked} needs more memory than this replica's budget allows "
                                    f"for a {w}x{h} image; the most it allows is {most}")
        return asked

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.01)
    async def _batch(self, items: list[tuple[str, torch.Tensor]]) -> list[torch.Tensor]:
        """Frames of concurrent small requests: one engine call per (model, size) group."""
        self.batch_sizes[len(items)] += 1
        return await asyncio.get_running_loop().run_in_executor(self._engine, self._run_groups, items)

    def _run_groups(self, items) -> list[torch.Tensor]:
        out: list[torch.Tensor | None] = [None] * len(items)
        groups = collections.defaultdict(list)
        for i, (model, lr) in enumerate(items):
            groups[(model, tuple(lr.shape[1:]))].append(i)
        for (model, _), index in groups.items():
            step = self.engines[model].shapes.max_batch or len(index)
            for k in range(0, len(index), step):
                chunk = index[k:k + step]
                sr = self._call(model, torch.cat([items[i][1] for i in chunk]))
                for j, i in enumerate(chunk):
                    out[i] = sr[j:j + 1]
        return out

    def _call(self, model: str, lr: torch.Tensor) -> torch.Tensor:
        """One engine call; always on the engine thread."""
        self.engine_batches[lr.shape[0]] += 1
        with torch.inference_mode():
            return self.engines[model](lr)

    def stats(self) -> dict:
        """What this replica has done and how it is set (tests, the load test, operators)."""
        first = next(iter(self.engines.values()))
        return {"batch_sizes": dict(self.batch_sizes), "engine_batches": dict(self.engine_batches),
                "batch_pixels": self.batch_pixels, "job_budget_mib": self.job_budget // 2**20,
                "engine": {"backend": first.name, "precision": first.precision, "device": first.device},
                "scale": SCALE}

    def __del__(self):
        for pool in ("_engine", "_jobs"):
            if hasattr(self, pool):
                getattr(self, pool).shutdown(wait=False, cancel_futures=True)
