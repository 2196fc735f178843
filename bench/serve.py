"""Load test of the upscaling service against the CLI, on the same images in the same run.

    python -m bench.serve [--clients 4] [--seconds 30] [--size 128x128] [--backend auto] ...

1. The CLI's per-image throughput: the image job the CLI runs (read, upscale, write) in a loop
   with the engine opened once, and ``python -m srgan_fast.upscale`` as one process per image
   (how images go through the CLI today, start-up included).
2. ``python -m srgan_fast.serve`` started as a user starts it; N clients post the images for T
   seconds: throughput, p50/p95/p99 latency, errors.
3. The same N clients again, beside N hostile clients sending truncated images, decompression
   bombs, bodies over the limit, wrong content types and random bytes: the good requests must
   all succeed, the bad ones be refused with their status, and the service be healthy after.
4. SIGTERM: the service must exit 0.

Writes the results as JSON (``--out``) and prints a markdown table. Traffic goes to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

from srgan_fast.atomic import write_json

REPO = Path(__file__).resolve().parents[1]


def _images(n: int, h: int, w: int) -> list[bytes]:
    """``n`` different h x w PNGs cut from one picture (a photograph when the shared data is there)."""
    import numpy as np
    from PIL import Image

    from .pipelines import _input_picture

    pic = (_input_picture(h + n, w + n).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(pic[i:i + h, i:i + w]).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def _hostile(good: bytes, max_body: int) -> list[tuple[str, bytes, str, set]]:
    """(kind, body, content type, statuses that count as correctly refused)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(1 << 20), 9)) + chunk(b"IEND", b""))
    return [("truncated", good[: len(good) // 2], "image/png", {400}),
            ("bomb", bomb, "image/png", {413}),
            ("over max body", b"\x89PNG\r\n\x1a\n" + bytes(max_body), "image/png", {413, "reset"}),
            ("wrong type", b"hello, not an image", "text/plain", {415}),
            ("random bytes", os.urandom(4096), "application/octet-stream", {415})]


def cli_loop(images: list[bytes], args, seconds: float) -> dict:
    """Images/s of the CLI's image job in one process, engine opened once (open time excluded)."""
    from srgan_fast.checkpoints import model_weights
    from srgan_fast.image.job import upscale_file
    from srgan_fast.jobs.engine_spec import EngineSpec

    spec = EngineSpec(backend=args.backend, precision=args.precision, weights=str(model_weights(args.model)))
    with tempfile.TemporaryDirectory() as tmp, spec.open() as engine:
        srcs = []
        for i, data in enumerate(images):
            srcs.append(Path(tmp) / f"in{i}.png")
            srcs[-1].write_bytes(data)
        upscale_file(engine, srcs[0], Path(tmp) / "warm.png")
        done, t0, cpu0 = 0, time.perf_counter(), time.process_time()
        while done < len(srcs) or time.perf_counter() - t0 < seconds:
            src = srcs[done % len(srcs)]
            upscale_file(engine, src, Path(tmp) / f"out{done % len(srcs)}.png")
            done += 1
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"images": done, "seconds": wall, "images_per_s": done / wall, "cpu_s_per_image": cpu / done}


def cli_processes(images: list[bytes], args, count: int) -> dict:
    """Images/s of ``python -m srgan_fast.upscale IN OUT``, one process per image."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for i in range(count):
            src, dst = Path(tmp) / f"in{i}.png", Path(tmp) / f"out{i}.png"
            src.write_bytes(images[i % len(images)])
            subprocess.run([sys.executable, "-m", "srgan_fast.upscale", str(src), str(dst), "--backend",
                            args.backend, "--precision", args.precision, "--model", args.model],
                           check=True, capture_output=True, cwd=REPO)
        wall = time.perf_counter() - t0
    return {"images": count, "seconds": wall, "images_per_s": count / wall}


def start_service(args, port: int) -> tuple[subprocess.Popen, str, float]:
    cmd = [sys.executable, "-m", "srgan_fast.serve", "--port", str(port), "--backend", args.backend,
           "--precision", args.precision, "--model", args.model, "--models", args.model,
           "--max-body-mb", str(args.max_body_mb)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "serving on" in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
            return proc, f"http://127.0.0.1:{port}/", time.perf_counter() - t0
    raise SystemExit("the service did not start:\n" + "".join(lines[-20:]))


def _client(url, bodies, stop_at, results, lock, hostile=False):
    import requests

    session = requests.Session()
    i = 0
    while time.perf_counter() < stop_at:
        kind, body, ctype, ok = bodies[i % len(bodies)]
        i += 1
        t0 = time.perf_counter()
        try:
            r = session.post(url + "v1/upscale", data=body, headers={"Content-Type": ctype}, timeout=300)
            status = r.status_code
            good_json = status == 200 or (r.headers.get("content-type", "").startswith("application/json")
                                          and "error" in r.json())
        except requests.ConnectionError:
            status, good_json = "reset", True
            session = requests.Session()
        latency = time.perf_counter() - t0
        with lock:
            results.append({"kind": kind, "hostile": hostile, "status": status, "latency": latency,
                            "expected": status in ok and good_json})


def _role(proc) -> str:
    """A process of the service by what it does: Ray's workers by their actor (``ray::ProxyActor``),
    Ray's own binaries and scripts by file name, the service's driver as ``srgan_fast.serve``."""
    cmd = " ".join(proc.cmdline()).split()  # Ray's binaries rewrite their argv into one string
    if not cmd:
        return proc.name()
    if cmd[0].startswith("ray::"):
        return cmd[0].split(".")[0]
    first = Path(cmd[0]).name
    if not first.startswith("python"):
        return first                                  # raylet, gcs_server
    return next((Path(a).name for a in cmd[1:4] if a.endswith(".py") or a == "srgan_fast.serve"), first)


def tree_cpu_seconds(pid: int, seen: dict) -> float:
    """CPU seconds used by a process and its descendants (Ray's processes); ``seen`` keeps the last
    reading of each, (role, seconds) by pid, so one that exits still counts what it used."""
    import psutil

    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    for proc in procs:
        try:
            t = proc.cpu_times()
            seen[proc.pid] = (seen[proc.pid][0] if proc.pid in seen else _role(proc), t.user + t.system)
        except psutil.Error:
            pass
    return sum(c for _, c in seen.values())


def cpu_by_role(before: dict, after: dict, images: int) -> dict:
    """Milliseconds of CPU per answered image, by process role, largest first."""
    roles: dict = {}
    for pid, (role, c) in after.items():
        roles[role] = roles.get(role, 0.0) + c - before.get(pid, (role, 0.0))[1]
    return {r: round(c / images * 1000, 1) for r, c in sorted(roles.items(), key=lambda kv: -kv[1])
            if c / images >= 0.0005}


def load(url: str, images: list[bytes], clients: int, seconds: float, hostile_clients: int = 0,
         hostile_bodies=None, service_pid: int | None = None) -> dict:
    good = [("good", b, "image/png", {200}) for b in images]
    results, lock = [], threading.Lock()
    start = time.perf_counter()
    stop_at = start + seconds
    threads = [threading.Thread(target=_client, args=(url, good[k:] + good[:k], stop_at, results, lock))
               for k in range(clients)]
    threads += [threading.Thread(target=_client, args=(url, hostile_bodies[k:] + hostile_bodies[:k], stop_at,
                                                       results, lock, True)) for k in range(hostile_clients)]
    seen: dict = {}
    cpu0 = tree_cpu_seconds(service_pid, seen) if service_pid else None
    before = dict(seen)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    out = summarize(results, wall)
    if service_pid and out["good_ok"]:
        used = tree_cpu_seconds(service_pid, seen) - cpu0
        out["service_cpu_s_per_image"] = used / out["good_ok"]
        out["service_cpu_ms_per_image_by_process"] = cpu_by_role(before, seen, out["good_ok"])
        out["cores_busy"] = used / wall
    return out


def summarize(results: list[dict], wall: float) -> dict:
    import numpy as np

    good = [r for r in results if not r["hostile"]]
    ok = [r["latency"] for r in good if r["status"] == 200]
    pct = (np.percentile(ok, [50, 95, 99]) * 1000).round(0).tolist() if ok else [None] * 3
    hostile = [r for r in results if r["hostile"]]
    by_kind = {}
    for r in hostile:
        k = by_kind.setdefault(r["kind"], {"sent": 0, "refused_correctly": 0, "statuses": {}})
        k["sent"] += 1
        k["refused_correctly"] += r["expected"]
        k["statuses"][str(r["status"])] = k["statuses"].get(str(r["status"]), 0) + 1
    failed = {}
    for r in good:
        if r["status"] != 200:
            failed[str(r["status"])] = failed.get(str(r["status"]), 0) + 1
    return {"seconds": wall, "good_requests": len(good), "good_ok": len(ok), "good_failed": failed,
            "images_per_s": len(ok) / wall, "p50_ms": pct[0], "p95_ms": pct[1], "p99_ms": pct[2],
            "hostile": by_kind, "hostile_wrongly_answered": sum(not r["expected"] for r in hostile)}


def healthy(url: str, image: bytes) -> bool:
    import requests

    h = requests.get(url + "healthz", timeout=30)
    r = requests.post(url + "v1/upscale", data=image, timeout=300)
    return h.status_code == 200 and h.json().get("status") == "ok" and r.status_code == 200


def table(res: dict) -> str:
    cli, proc = res["cli_loop"]["images_per_s"], res["cli_processes"]["images_per_s"]
    cli_cpu = res["cli_loop"]["cpu_s_per_image"]
    rows = ["| run | clients | images/s | vs CLI loop | vs CLI process per image | CPU s per image | p50 ms | "
            "p95 ms | p99 ms | failed good requests | hostile requests (refused as expected) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            f"| CLI, engine opened once (`upscale_file` loop) | 1 | {cli:.2f} | 1.00 | {cli / proc:.1f} | "
            f"{cli_cpu:.2f} | {1000 / cli:.0f} | – | – | – | – |",
            f"| CLI, `python -m srgan_fast.upscale` per image | 1 | {proc:.2f} | {proc / cli:.2f} | 1.0 | – | "
            f"{1000 / proc:.0f} | – | – | – | – |"]
    for name, key in (("service", "service"), ("service + hostile clients", "hostile")):
        r = res[key]
        hostile = sum(k["sent"] for k in r["hostile"].values())
        right = sum(k["refused_correctly"] for k in r["hostile"].values())
        rows.append(f"| {name} | {res['clients']}{' + ' + str(res['clients']) if key == 'hostile' else ''} | "
                    f"{r['images_per_s']:.2f} | {r['images_per_s'] / cli:.2f} | {r['images_per_s'] / proc:.1f} | "
                    f"{r.get('service_cpu_s_per_image', float('nan')):.2f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} | "
                    f"{sum(r['good_failed'].values())} of {r['good_requests']} | "
                    f"{f'{right} of {hostile}' if hostile else '–'} |")
    return "\n".join(rows)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clients", type=int, default=4, help="concurrent clients posting good images")
    p.add_argument("--seconds", type=float, default=30, help="length of each load run")
    p.add_argument("--size", default="128x128", help="input size HxW (LR pixels)")
    p.add_argument("--images", type=int, default=8, help="different images cycled through")
    p.add_argument("--backend", default="auto", help="engine backend (service and CLI alike)")
    p.add_argument("--precision", default="fp32", help="engine precision")
    p.add_argument("--model", default="srgan", help="model")
    p.add_argument("--cli-seconds", type=float, default=20, help="length of the CLI loop measurement")
    p.add_argument("--cli-processes", type=int, default=3, help="images run as one CLI process each")
    p.add_argument("--max-body-mb", type=float, default=4, help="the service's upload limit")
    p.add_argument("--out", default=None, help="write the results here as JSON")
    return p.parse_args(argv)


def main(argv=None) -> int:
    import requests

    from srgan_fast import engines

    from .env import stamp

    args = parse_args(argv)
    if args.backend == "auto":
        args.backend = engines.default_backend()
    h, w = (int(v) for v in args.size.lower().split("x"))
    images = _images(args.images, h, w)
    res = {"env": stamp("cpu"), "clients": args.clients, "seconds": args.seconds, "size": [h, w],
           "backend": args.backend, "precision": args.precision, "model": args.model}
    print(f"CLI loop ({args.cli_seconds:g} s) ...", file=sys.stderr, flush=True)
    res["cli_loop"] = cli_loop(images, args, args.cli_seconds)
    print(f"CLI, one process per image (x{args.cli_processes}) ...", file=sys.stderr, flush=True)
    res["cli_processes"] = cli_processes(images, args, args.cli_processes)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc, url, res["service_start_s"] = start_service(args, port)
    try:
        for data in images[:2]:  # warm: first requests build Ray's connections
            requests.post(url + "v1/upscale", data=data, timeout=300).raise_for_status()
        res["load_average_start"] = os.getloadavg()
        print(f"service: {args.clients} clients for {args.seconds:g} s ...", file=sys.stderr, flush=True)
        res["service"] = load(url, images, args.clients, args.seconds, service_pid=proc.pid)
        print(f"service + {args.clients} hostile clients for {args.seconds:g} s ...", file=sys.stderr, flush=True)
        bad = _hostile(images[0], int(args.max_body_mb * 2**20))
        res["hostile"] = load(url, images, args.clients, args.seconds, args.clients, bad, service_pid=proc.pid)
        res["healthy_after"] = healthy(url, images[0])
        res["load_average_end"] = os.getloadavg()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            res["service_exit"] = proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            res["service_exit"] = "killed after 300 s"
    res["table"] = table(res)
    print(res["table"])
    print(f"\nhealthy after hostile run: {res['healthy_after']}; service exit on SIGTERM: {res['service_exit']}; "
          f"load average start/end {res['load_average_start'][0]:.2f}/{res['load_average_end'][0]:.2f}")
    print(json.dumps({k: res["hostile"]["hostile"][k]["statuses"] for k in res["hostile"]["hostile"]}))
    print(f"\nservice CPU per image by process ({res['service']['cores_busy']:.2f} cores busy; "
          f"CLI loop {res['cli_loop']['cpu_s_per_image'] * 1000:.0f} ms):")
    for role, ms in res["service"]["service_cpu_ms_per_image_by_process"].items():
        print(f"  {ms:7.1f} ms  {role}")
    if args.out:
        write_json(args.out, res, indent=1)
    return 0 if res["healthy_after"] and not res["hostile"]["good_failed"] and res["service_exit"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
