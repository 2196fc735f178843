"""The HTTP side: a FastAPI ingress (the page, the API, its OpenAPI schema at /docs and
/openapi.json) in front of the ``Upscaler`` replicas.

The ingress does the cheap checks (``validate``: content type, body size while reading, the
image header and its pixel count, the options) so that nothing unfit is queued; it then calls a
replica through a ``DeploymentHandle`` under the request's time limit. Ray enforces the bounded
queue (``max_queued_requests``: a full one raises ``BackPressureError`` here, answered 503 with
Retry-After) and restarts a replica that dies (its request is answered 503, not lost).
"""
# No ``from __future__ import annotations``: FastAPI reads the route parameters' annotations.
import asyncio
import logging
from dataclasses import replace
from importlib import resources

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from .deployment import Upscaler
from .http_errors import ServiceError, busy, openapi_errors, timed_out
from .limits import MEDIA_TYPES, OUTPUT_FORMATS, EngineRecipe, Limits
from .ray_local import keep_replica_on_loopback
from .validate import check_image, parse_options, read_upload

log = logging.getLogger("srgan_fast.serve")
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_UPLOAD_BODY = {"requestBody": {"required": True, "description": "the image: raw bytes (curl --data-binary "
                                "@photo.png) or the 'file' field of a form (curl -F file=@photo.png)",
                                "content": {**{t: _BINARY for t in ("image/png", "image/jpeg", "image/webp",
                                                                    "image/tiff", "image/bmp",
                                                                    "application/octet-stream")},
                                            "multipart/form-data": {"schema": {
                                                "type": "object", "required": ["file"],
                                                "properties": {"file": {"type": "string", "format": "binary"}}}}}}}

api = FastAPI(title="srgan_fast upscaling service",
              description="SRGAN 4x super-resolution over HTTP: the CLI's engines, exact tiling and image "
                          "rules. Errors are JSON {\"error\": \"...\"}.",
              version="1")


@api.exception_handler(StarletteHTTPException)
async def _http_error(request, exc):
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


@api.exception_handler(RequestValidationError)
async def _invalid(request, exc):
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
    return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=400)


@api.exception_handler(ServiceError)
async def _service_error(request, exc: ServiceError):
    return exc.response()


# Helpers the ingress uses are defined above it: Serve serializes the class when it is decorated.
async def _await(response):
    return await response


def _default_ext(fmt: str) -> str:
    from ..image.read import INPUT_FORMATS

    return INPUT_FORMATS[fmt]


@serve.deployment(name="Frontend")
@serve.ingress(api)
class Frontend:
    def __init__(self, upscaler, info: dict, limits: Limits, capacity: int):
        keep_replica_on_loopback()
        self.upscaler, self.info, self.limits, self.capacity = upscaler, info, limits, capacity
        self.admitted = 0  # uploads being read or answered: our own bound, so overflow gets JSON
        folder = resources.files("srgan_fast.serve") / "static"
        self.pages = {route: ((folder / name).read_bytes(), kind) for route, (name, kind) in STATIC.items()}
        self.in_flight, self.draining = 0, False

    def _page(self, route: str) -> Response:
        body, kind = self.pages[route]
        return Response(body, media_type=kind, headers={"Cache-Control": "no-cache"})

    @api.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def index(self):
        return self._page("/")

    @api.get("/app.js", include_in_schema=False)
    async def script(self):
        return self._page("/app.js")

    @api.get("/style.css", include_in_schema=False)
    async def style(self):
        return self._page("/style.css")

    @api.get("/healthz", summary="liveness and readiness",
             responses={200: {"description": "ok, or busy (all replicas working; requests may get 503)"},
                        **openapi_errors(503)})
    async def healthz(self):
        """200 {"status": "ok"} when an upscaling replica answers, {"status": "busy"} when all are
        working and the queue is full; 503 when no replica is running or the service is stopping."""
        from ray.serve.exceptions import BackPressureError

        if self.draining:
            raise busy("the service is stopping", self.limits.retry_after_s)
        try:
            await asyncio.wait_for(_await(self.upscaler.stats.remote()), timeout=5)
            return {"status": "ok"}
        except (BackPressureError, asyncio.TimeoutError):
            return {"status": "busy"}
        except Exception as e:  # noqa: BLE001 - any other failure means not ready
            raise busy(f"no upscaling replica is available ({e.__class__.__name__})",
                       self.limits.retry_after_s) from None

    @api.get("/v1/info", summary="models, formats and limits of this service")
    async def info(self):
        return {**self.info, "limits": self.limits.public(), "formats": sorted(set(OUTPUT_FORMATS)),
                "scale": 4}

    @api.post("/v1/upscale", summary="upscale one image 4x", openapi_extra=_UPLOAD_BODY,
              response_class=Response,
              responses={200: {"description": "the upscaled image; X-Notes says what the format could "
                                              "not hold", "content": {t: _BINARY for t in MEDIA_TYPES.values()}},
                         **openapi_errors(400, 413, 415, 503, 504)})
    async def upscale(
        self, request: Request,
        format: str | None = Query(None, description="output format: png, jpg, webp, tif or bmp "
                                                     "(default: the input's; GIF gives png)"),
        model: str | None = Query(None, description="model (GET /v1/info lists them; default: the "
                                                    "service's --model)"),
        tile: int | None = Query(None, ge=0, description="tile size in LR pixels, 0 = whole image "
                                                         "(default: from the replica's memory budget)"),
        detail: float | None = Query(None, description="srgan only: texture (1) vs fidelity (0), one of "
                                                       "the levels GET /v1/info lists (default: the "
                                                       "service's --detail)"),
        timeout: float | None = Query(None, gt=0, description="seconds this request may take, at most "
                                                              "the service's limit"),
    ):
        if self.draining:
            raise busy("the service is stopping: retry on another instance or after it restarts",
                       self.limits.retry_after_s)
        if self.admitted >= self.capacity:  # before the body is read: an overflow costs nothing
            raise busy("the service is at capacity (queue full): retry later", self.limits.retry_after_s)
        self.admitted += 1
        try:
            return await self._upscale(request, format, model, tile, detail, timeout)
        finally:
            self.admitted -= 1

    async def _upscale(self, request, format, model, tile, detail, timeout):
        info = self.info
        opts = parse_options(request.query_params, info["models"], info["default_model"], self.limits,
                             info.get("detail"))
        data = await read_upload(request, self.limits)
        fmt, w, h = check_image(data, self.limits)
        opts = replace(opts, ext=opts.ext or _default_ext(fmt))
        self.in_flight += 1
        try:
            reply = await self._call(data, opts, (w, h))
        finally:
            self.in_flight -= 1
        if reply.status != 200:
            raise ServiceError(reply.status, reply.error)
        headers = {"X-Width": str(reply.width), "X-Height": str(reply.height),
                   "Content-Disposition": f'inline; filename="upscaled{opts.ext}"'}
        if reply.notes:
            headers["X-Notes"] = " | ".join(reply.notes).encode("ascii", "replace").decode()
        return Response(reply.body, media_type=reply.media_type, headers=headers)

    async def drain(self, timeout_s: float) -> int:
        """Stop taking uploads (503) and wait up to ``timeout_s`` for those in flight to be
        answered; returns how many were still in flight. Called by the CLI before Serve stops, whose
        proxy would otherwise close their connections without an answer."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.1)
        return self.in_flight

    async def _call(self, data: bytes, opts, size):
        from ray.exceptions import RayActorError
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

        response = self.upscaler.upscale.remote(data, opts, size)
        try:
            return await asyncio.wait_for(_await(response), timeout=opts.timeout_s)
        except asyncio.TimeoutError:
            response.cancel()
            raise timed_out(opts.timeout_s) from None
        except BackPressureError:
            raise busy("the service is at capacity (queue full): retry later", self.limits.retry_after_s) from None
        except DeploymentUnavailableError:
            raise busy("no upscaling replica is available", self.limits.retry_after_s) from None
        except RayActorError:
            # Ray restarts the replica; this request's work is lost and said so, not retried blindly.
            raise busy("the replica working on this request died (Ray is restarting it): retry",
                       self.limits.retry_after_s) from None
        except Exception:
            log.exception("upscale failed")
            raise ServiceError(500, "internal error (logged by the service)") from None


def build_app(recipe: EngineRecipe, limits: Limits, replicas: int = 1, replica_resources: dict | None = None):
    """The Serve application: the ingress bound to ``replicas`` Upscaler replicas."""
    upscaler = Upscaler.options(
        num_replicas=replicas, max_ongoing_requests=limits.max_ongoing,
        max_queued_requests=limits.max_queued, ray_actor_options=replica_resources or {"num_cpus": 1},
        # In-flight requests get their full time limit when the service stops.
        graceful_shutdown_timeout_s=limits.timeout_s + 5,
        max_constructor_retry_count=2,  # an engine that cannot open fails the start, not 20 retries
    ).bind(recipe, limits)
    capacity = limits.frontend_capacity(replicas)
    info = {"models": list(recipe.models), "default_model": recipe.default_model, "detail": recipe.detail_info(),
            "backend": recipe.backend, "precision": recipe.precision}
    # Ray's own bounds on the ingress sit well above ours: its proxy answers an overflow with a
    # plain-text 503 and no Retry-After, and its count is best effort under a burst.
    return Frontend.options(
        num_replicas=1, max_ongoing_requests=4 * capacity, max_queued_requests=4 * capacity,
        ray_actor_options={"num_cpus": 0}, graceful_shutdown_timeout_s=limits.timeout_s + 5,
    ).bind(upscaler, info, limits, capacity)
