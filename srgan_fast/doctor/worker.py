"""One backend's rows, in a process of its own: ``python -m srgan_fast.doctor.worker SPEC.json``.

A backend that crashes the process (a segfault in a GPU runtime), hangs or runs out of memory
takes only its own rows with it: the doctor reports what the finished rows found and why the
rest is missing. Rows are written to ``spec["out"]`` after each one (atomically), and the
process gets a fresh allocator, so memory figures never carry one backend's buffers into
another's. On a CPU this process may still choose Triton's interpreter (nothing imported triton).
"""
from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

from srgan_fast.atomic import write_json
from srgan_fast.engines import ARTIFACT_BACKENDS
from srgan_fast.errors import SrganError

from .availability import precision_skip

LOG_LINES = 40  # build log lines kept per row in the JSON (TensorRT's can be long)


def empty_row(backend: str, asked: str | None) -> dict:
    """Every row has every field (the JSON schema is stable): None where a check did not run."""
    return {"backend": backend, "asked": asked, "runs": None, "status": "skip", "reason": None, "note": None,
            "engine": None, "artifact": None, "parity": None, "range": None, "tiling": None, "speed": None,
            "memory": None, "extra": None, "seconds": None, "log": [], "traceback": None}


def _one_line(e: BaseException) -> str:
    if isinstance(e, SrganError):
        return str(e)
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{e.__class__.__name__}: {first[:300]}" if first else e.__class__.__name__


def _open(spec: dict, asked: str, log):
    """(engine, artifact info or None): artifact backends through the build's cache (built when
    missing, checked when cached), the eager ones from the weights."""
    from srgan_fast.engines import auto_precision, mark_auto, open_engine, open_record
    from srgan_fast.precision import AUTO

    backend, device, weights = spec["backend"], spec["device"], spec["weights"]
    if backend in ARTIFACT_BACKENDS:
        from srgan_fast.build.pipeline import ensure_artifact
        from srgan_fast.build.spec import uses_calibration

        precision, choice = auto_precision(backend, device, weights) if asked == AUTO else (asked, None)
        calib = spec.get("calib") if uses_calibration(precision) else None  # the build reads it for these only
        record = ensure_artifact(weights, precision, backend, calib=calib, out=spec.get("cache"), device=device,
                                 rebuild=bool(spec.get("rebuild")), log=log)
        artifact = {"path": str(record.path), "built": record.built,
                    "build_seconds": record.sidecar.get("build_seconds"), "shapes": str(record.shapes)}
        return mark_auto(open_record(record), choice), artifact
    options = {"device": device}
    if backend == "triton":
        options.update(log=log, progress=False)
    return open_engine(backend, asked, weights, **options), None


def _note(engine) -> str:
    plan = getattr(engine, "plan", None)
    note = plan.note if plan is not None else (getattr(engine, "sidecar", None) or {}).get("precision_note", "")
    if engine.precision_choice and not note.startswith(engine.precision_choice):
        note = f"{engine.precision_choice}; {note}" if note else engine.precision_choice
    return note


def _pycuda_check(artifact: dict, engine, crops) -> dict:
    """The torch-free TensorRT runner (pycuda) on the same engine file, against the torch runtime."""
    from srgan_fast.engines.tensorrt_pycuda import PycudaRunner
    from srgan_fast.parity import compare

    runner = PycudaRunner(artifact["path"], device=engine.torch_device.index or 0)
    try:
        x = crops[0][1]
        import torch

        got = torch.from_numpy(runner(x.numpy()))
        r = compare(got, engine(x).float().cpu(), engine.precision)
    finally:
        runner.close()
    return {"status": "ok" if r.ok else "FAIL", "max_abs": r.max_abs, "nan": r.nan, "inf": r.inf,
            "against": "the torch TensorRT runtime on the same engine file"}


def check_row(spec: dict, asked: str, ctx: dict) -> dict:
    """Open, check (parity, range, tiling, speed, memory) and close one backend x precision."""
    import torch

    from .checks import parity_check, tiling_check, tiling_skipped
    from .inputs import speed_frame
    from .ranges import range_check
    from .speed import device_baseline, settings_for, speed_check, speed_skipped

    backend, device = spec["backend"], spec["device"]
    row = empty_row(backend, asked)
    reason = precision_skip(backend, asked, device)
    if reason:
        row["reason"] = reason
        return row
    t0 = time.perf_counter()
    lines: list[str] = []

    def log(msg: str) -> None:
        lines.append(msg)
        print(f"  {backend} {asked}: {msg.strip()}", file=sys.stderr, flush=True)

    engine = None
    try:
        base = device_baseline(device)
        engine, row["artifact"] = _open(spec, asked, log)
        runs = engine.precision
        row.update(runs=runs, note=_note(engine), engine=engine.info())
        row["parity"] = parity_check(engine, ctx["crops"], ctx["refs"], runs)
        row["range"] = range_check(ctx["ranges"], backend, asked, runs, getattr(engine, "sidecar", None))
        if ctx["tiling"] is None:
            row["tiling"] = tiling_skipped(ctx["tiling_skip"])
        else:
            row["tiling"] = tiling_check(engine, *ctx["tiling"], runs)
        n, h, w = ctx["size"]
        if engine.shapes.accepts(n, h, w):
            timing = settings_for(device, spec["quick"], interpreter=ctx["interpreter"])
            row["speed"], row["memory"] = speed_check(engine, speed_frame(n, h, w), timing, ctx["macs"], base, device)
        else:
            row["speed"] = speed_skipped(f"{n}x{h}x{w} is outside the engine's shapes {engine.shapes}")
        if backend == "tensorrt" and spec.get("pycuda"):
            row["extra"] = {"pycuda": _pycuda_check(row["artifact"], engine, ctx["crops"])}
        failed = [k for k in ("parity", "range", "tiling") if (row[k] or {}).get("status") == "FAIL"]
        failed += [f"extra.{k}" for k, v in (row["extra"] or {}).items() if v.get("status") == "FAIL"]
        row["status"] = "FAIL" if failed else "ok"
        row["reason"] = f"failed: {', '.join(failed)}" if failed else None
    except Exception as e:  # noqa: BLE001 - one row's failure is a FAIL line, never the doctor's end
        row.update(status="FAIL", reason=_one_line(e))
        if not isinstance(e, SrganError):
            row["traceback"] = traceback.format_exc()[-4000:]
    finally:
        if engine is not None:
            engine.close()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    row["seconds"] = round(time.perf_counter() - t0, 2)
    row["log"] = lines[-LOG_LINES:]
    return row


def context(spec: dict) -> dict:
    """What every row of this backend shares: the references, layer ranges, frames and sizes."""
    from srgan_fast.build.export import reference_outputs
    from srgan_fast.checkpoints import load_generator
    from srgan_fast.model import flops_per_lr_pixel

    from .inputs import TINY, parity_crops, tiling_frame
    from .ranges import layer_ranges

    g = load_generator(spec["weights"])
    interpreter = spec["backend"] == "triton" and not spec["device"].startswith("cuda")
    crops = parity_crops(tiny=interpreter)
    ctx = {"crops": crops, "refs": reference_outputs(g, [x for _, x in crops]),
           "ranges": layer_ranges(g, [x for _, x in parity_crops()]), "macs": flops_per_lr_pixel(g),
           "size": [1, *TINY] if interpreter else spec["size"], "tiling": tiling_frame(), "tiling_skip": None,
           "interpreter": interpreter}
    if interpreter:
        ctx["tiling"] = None
        ctx["tiling_skip"] = ("Triton interpreter: a frame wider than a tile plus twice the 40-pixel overlap "
                              "takes minutes at ~0.2 GFLOP/s; checked on a GPU")
    return ctx


def run(spec: dict) -> list[dict]:
    rows: list[dict] = []
    ctx = context(spec)
    for asked in spec["precisions"]:
        rows.append(check_row(spec, asked, ctx))
        r = rows[-1]
        print(f"doctor: {r['backend']} {asked}: {r['status']}" + (f": {r['reason']}" if r["reason"] else "")
              + (f" ({r['seconds']:.0f} s)" if r["seconds"] is not None else ""), file=sys.stderr, flush=True)
        write_json(spec["out"], {"rows": rows, "done": False})
    write_json(spec["out"], {"rows": rows, "done": True})
    return rows


def no_tf32() -> None:
    """fp32 means IEEE fp32 in the doctor: cuDNN's default TF32 convolutions (10-bit mantissa)
    would fail the fp32 tolerance against the reference. Triton's fp32 kernels and TensorRT's fp32
    engines already keep TF32 off; the torch engine leaves torch's default, which this overrides
    for the doctor's processes only (the peak is measured the same way)."""
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    if str(spec.get("device", "")).startswith("cuda"):
        no_tf32()
    try:
        run(spec)
    except SrganError as e:  # the weights or the inputs: said once, by the parent, for this backend
        write_json(spec["out"], {"rows": [], "done": False, "error": str(e)})
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
