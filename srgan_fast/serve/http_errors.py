"""HTTP errors: every failure leaves the service as JSON ``{"error": "..."}`` with its status.

400 a bad image or option, 404 no such route, 405 wrong method, 413 too large (body, pixels or
memory), 415 a content type or image format the service does not read, 500 a bug (logged, no
details sent), 503 busy (queue full: with Retry-After) or a replica lost, 504 over the time limit.
"""
from __future__ import annotations

# The schema of every error body, for the OpenAPI document.
ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
ERROR_STATUSES = {400: "bad image or option", 413: "body, pixels or memory over the limits",
                  415: "unsupported content type or image format",
                  503: "queue full (Retry-After says when to retry) or no replica available",
                  504: "the request took longer than its time limit"}


class ServiceError(Exception):
    """An error answered to the client: status, one-line message, extra headers."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}

    def response(self):
        from fastapi.responses import JSONResponse

        return JSONResponse({"error": self.message}, status_code=self.status, headers=self.headers)


def bad_request(message: str) -> ServiceError:
    return ServiceError(400, message)


def too_large(message: str) -> ServiceError:
    return ServiceError(413, message)


def unsupported(message: str) -> ServiceError:
    return ServiceError(415, message)


def busy(message: str, retry_after_s: int) -> ServiceError:
    return ServiceError(503, message, {"Retry-After": str(max(1, int(retry_after_s)))})


def timed_out(seconds: float) -> ServiceError:
    return ServiceError(504, f"the request took longer than its {seconds:g} s limit")


def openapi_errors(*statuses: int) -> dict:
    """FastAPI ``responses=`` entries for these error statuses."""
    return {s: {"description": ERROR_STATUSES[s], "content": {"application/json": {"schema": ERROR_SCHEMA}}}
            for s in statuses}
