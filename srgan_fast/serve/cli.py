"""``python -m srgan_fast.serve``: start Ray (local on loopback, or ``--address`` of a cluster)
and the upscaling service; print the URL; stop cleanly on Ctrl-C or SIGTERM.

Stopping: the first signal drains the ingress (new uploads get 503, uploads in flight get up to
their time limit to be answered), then stops Serve and the local Ray instance, so nothing is left
running. A second signal skips the wait and shuts Ray down at once.
"""
from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
from dataclasses import replace

from ..errors import HelpFormatter, SrganError, cli, require
from .limits import MiB, Limits, cpu_count
from .ray_local import LOOPBACK, start_ray

APP_NAME = "srgan_fast"
DEFAULTS = Limits()


class _Stop(BaseException):
    """A stop signal (Ctrl-C, SIGTERM); BaseException so no library swallows it."""


def parse_args(argv):
    from .. import engines, precision
    from ..checkpoints import DEFAULT_MODEL, MODELS

    p = argparse.ArgumentParser(prog="python -m srgan_fast.serve", formatter_class=HelpFormatter,
                                description="Serve 4x upscaling over HTTP (Ray Serve): a web page at /, "
                                            "POST /v1/upscale, GET /healthz, the API schema at /docs.")
    p.add_argument("--host", default=LOOPBACK,
                   help="address to listen on; anything but loopback lets every machine that reaches "
                        "this one use the service (there is no authentication)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port")
    p.add_argument("--address", default=None,
                   help="a Ray cluster to join, e.g. HEAD:6379 (default: a local Ray instance on loopback)")
    p.add_argument("--replicas", type=int, default=None,
                   help="upscaling replicas (default: one per GPU, else 1 using every CPU core)")
    p.add_argument("--backend", default="auto", choices=("auto",) + engines.BACKENDS,
                   help="engine backend, as for upscale")
    p.add_argument("--precision", default=precision.DEFAULT_PRECISION,
                   choices=precision.CHOICES, help="engine precision, as for upscale (auto: bf16 on a CPU "
                                                   "with native bf16, fp16 on a GPU where the model fits, else fp32)")
    p.add_argument("--model", default=DEFAULT_MODEL, choices=tuple(MODELS),
                   help="model for requests that do not name one (?model=)")
    p.add_argument("--models", default=",".join(MODELS), metavar="LIST",
                   help="models the service offers (each replica holds one engine per model)")
    from ..detail import DEFAULT_DETAIL, DETAIL_HELP, parse_detail
    p.add_argument("--detail", type=parse_detail, default=DEFAULT_DETAIL, metavar="A",
                   help=f"{DETAIL_HELP}: the level of requests that ask for none")
    p.add_argument("--details", default="0,0.5,1", metavar="LIST",
                   help="--detail levels a request may ask for (?detail=): each is one more engine "
                        "per replica (0 shares the srresnet's)")
    p.add_argument("--memory-budget", type=int, default=None, metavar="MiB",
                   help="memory per replica for its images (half for batches of small ones, half for "
                        "one large one's tiles and output) (default: as upscale's: min(2 GiB, RAM/4), "
                        "or half the free GPU memory)")
    p.add_argument("--max-body-mb", type=float, default=DEFAULTS.max_body / MiB, metavar="MB",
                   help="largest upload, in MiB")
    p.add_argument("--max-pixels", type=int, default=DEFAULTS.max_pixels,
                   help="largest input image in pixels, checked from its header before decoding")
    p.add_argument("--timeout", type=float, default=DEFAULTS.timeout_s, metavar="S",
                   help="time limit of one request, in seconds (a request may ask for less)")
    p.add_argument("--max-ongoing", type=int, default=DEFAULTS.max_ongoing, metavar="N",
                   help="requests one replica works on at once")
    p.add_argument("--max-queued", type=int, default=DEFAULTS.max_queued, metavar="N",
                   help="requests that wait for a replica; past that the answer is 503 with Retry-After")
    p.add_argument("--max-batch", type=int, default=DEFAULTS.max_batch, metavar="N",
                   help="small images of concurrent requests run in one engine call")
    p.add_argument("--batch-wait-ms", type=float, default=DEFAULTS.batch_wait_s * 1000, metavar="MS",
                   help="how long a batch waits to fill")
    return p.parse_args(argv)


def _limits(args) -> Limits:
    return Limits(max_body=int(args.max_body_mb * MiB), max_pixels=args.max_pixels, timeout_s=args.timeout,
                  max_ongoing=args.max_ongoing, max_queued=args.max_queued, max_batch=args.max_batch,
                  batch_wait_s=args.batch_wait_ms / 1000,
                  memory_budget=args.memory_budget * MiB if args.memory_budget else None).check()


def _details(text: str) -> tuple[float, ...]:
    from ..detail import parse_detail

    try:
        return tuple(parse_detail(t.strip()) for t in text.split(",") if t.strip())
    except argparse.ArgumentTypeError as e:
        raise SrganError(f"--details {text!r}: {e}") from None


def _check_port(host: str, port: int) -> None:
    """One line now, instead of a proxy that fails to start later."""
    if not 1 <= port <= 65535:
        raise SrganError(f"--port must be in 1..65535, got {port}")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is fine
            s.bind((host, port))
    except OSError as e:
        raise SrganError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None


def _on_signal(signum, frame):
    raise _Stop(signal.Signals(signum).name)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# Older Serve cannot pickle a FastAPI >= 0.137 app (its routes hold a lock); setup.py says the same.
MIN_RAY_SERVE = (2, 57, 0)


def _check_ray_version() -> None:
    import re

    import ray

    have = tuple(int(n) for n in re.findall(r"\d+", ray.__version__)[:3])
    if have < MIN_RAY_SERVE:
        need = ".".join(map(str, MIN_RAY_SERVE))
        raise SrganError(f"ray {ray.__version__} is too old for the service (needs {need} or newer): "
                         f"pip install 'ray[serve]>={need}'")


@cli
def main(argv=None):
    args = parse_args(argv)
    for module, label in (("ray.serve", "ray[serve]"), ("fastapi", "fastapi"), ("python_multipart", "python-multipart")):
        require(module, "serve", label)
    _check_ray_version()
    from .limits import EngineRecipe

    limits = _limits(args)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    recipe = EngineRecipe(args.backend, args.precision, models, args.model,  # checks --model/--models
                          details=_details(args.details), default_detail=args.detail)
    if args.replicas is not None and args.replicas < 1:
        raise SrganError(f"--replicas must be >= 1, got {args.replicas}")
    _check_port(args.host, args.port)
    if args.host not in (LOOPBACK, "localhost", "::1"):
        say(f"warning: listening on {args.host}: anyone who can reach this machine can use the service")
    started, running = False, False
    try:
        recipe = recipe.pinned()  # auto: decided once here, for every replica, and said
        recipe.prepare()  # artifacts are built once here, not by every replica
        started = start_ray(args.address, num_cpus=None if args.address else cpu_count())
        for sig in (signal.SIGINT, signal.SIGTERM):  # after ray.init, which sets its own SIGTERM handler
            signal.signal(sig, _on_signal)
        url = _run(args, recipe, limits)
        running = True
        say(f"serving on {url}  (page: {url}  API: POST {url}v1/upscale  schema: {url}docs); "
            "Ctrl-C stops")
        threading.Event().wait()  # until a signal raises _Stop
    except _Stop as stop:
        if running:
            say(f"{stop}: stopping: new requests get 503, requests in flight get up to {limits.timeout_s:g} s "
                "to finish (a second signal stops at once)")
            _drain(limits)
    finally:
        _shutdown(args, started)
    return 0


def _run(args, recipe, limits) -> str:
    import ray
    from ray import serve

    from .app import build_app

    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    replicas = args.replicas or gpus or 1
    if gpus:
        resources = {"num_gpus": 1, "num_cpus": 1}
    else:
        threads = max(1, cpus // replicas) if not args.address else None
        resources = {"num_cpus": threads or 1}
        recipe = replace(recipe, threads=threads)
    serve.start(http_options={"host": args.host, "port": args.port}, logging_config={"log_level": "WARNING"})
    try:
        serve.run(build_app(recipe, limits, replicas, resources), name=APP_NAME, route_prefix="/")
    except RuntimeError as e:  # a replica could not start (engine, weights): its error says why
        raise SrganError(f"the service did not start: {_why_not_started(serve) or str(e).strip()[:300]}") from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    return f"http://{host}:{args.port}/"


def _drain(limits) -> None:
    """Let the requests in flight be answered before Serve's proxy goes away."""
    from ray import serve

    try:
        left = serve.get_app_handle(APP_NAME).drain.remote(limits.timeout_s).result(timeout_s=limits.timeout_s + 10)
        if left:
            say(f"{left} request(s) still in flight after {limits.timeout_s:g} s: stopping anyway")
    except _Stop:
        say("stopping at once")
    except Exception as e:  # noqa: BLE001 - the stop goes on; say why the drain did not happen
        say(f"could not wait for the requests in flight ({e.__class__.__name__}): stopping")


def _why_not_started(serve) -> str | None:
    """The last line of a failed deployment's error (its constructor's exception), our prefix off."""
    try:
        for deployment in serve.status().applications[APP_NAME].deployments.values():
            lines = (deployment.message or "").strip().splitlines()
            if str(deployment.status).endswith("DEPLOY_FAILED") and lines:
                return lines[-1].replace("srgan_fast.errors.SrganError: ", "")[:300]
    except Exception:  # noqa: BLE001 - only a better message is lost
        return None
    return None


def _shutdown(args, started: bool) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    try:
        import ray

        if ray.is_initialized():
            from ray import serve

            try:
                if args.address:
                    serve.delete(APP_NAME)  # the cluster's Serve keeps running for its other apps
                else:
                    serve.shutdown()
            except _Stop:
                say("stopping at once")
    except _Stop:
        pass
    finally:
        if started:
            import ray

            ray.shutdown()
