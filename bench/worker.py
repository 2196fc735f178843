"""One measurement job in its own process: ``python -m bench.worker SPEC.json``.

A fresh process per case keeps cases from polluting each other (memory high-water marks,
allocator caches, thread pools, compiled graphs). The job writes its JSON result to
``spec["out"]`` after every step, so a crash or time-out still leaves what was measured.
"""
from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

from srgan_fast.atomic import write_json


def _write(path, obj) -> None:
    write_json(path, obj, indent=1)


def short_error(e: BaseException) -> str:
    """An exception as one short line for a results file."""
    lines = str(e).strip().splitlines()
    return f"{e.__class__.__name__}: {lines[0] if lines else ''}"[:300]


def run_case(spec: dict) -> dict:
    import torch

    from .backends import Case, SkipCase, open_case
    from .runner import Settings, cuda_used_bytes, measure_size, quality_input

    case = Case(**spec["case"])
    device = spec["device"]
    settings = Settings(**spec["settings"])
    result = {"id": case.id, "label": case.title, "backend": case.backend,
              "requested_precision": case.precision, "options": case.options,
              "status": "running", "sizes": []}
    out = spec["out"]
    _write(out, result)

    base_used = 0
    if device == "cuda":
        torch.cuda.init()
        torch.zeros(1, device="cuda")  # create the context before the baseline reading
        base_used = cuda_used_bytes(torch.device("cuda"))
    t0 = time.perf_counter()
    try:
        engine = open_case(case, spec["weights"], device, spec["sizes"], spec.get("threads"))
    except SkipCase as e:
        result.update(status="skipped", reason=str(e))
        _write(out, result)
        return result
    result["open_s"] = time.perf_counter() - t0
    result["precision"] = engine.precision
    result["engine"] = {**engine.info(), "torch_device": str(engine.torch_device)}
    result["status"] = "ok"
    _write(out, result)

    for n, h, w in spec["sizes"]:
        entry = {"batch": n, "h": h, "w": w}
        if not engine.shapes.accepts(n, h, w):
            entry["skipped"] = f"outside the engine's shape range {engine.shapes}"
        else:
            try:
                entry = measure_size(engine, n, h, w, settings, base_used)
            except Exception as e:  # noqa: BLE001 - e.g. out of memory at the largest size
                entry["error"] = short_error(e)
                if device == "cuda":
                    torch.cuda.empty_cache()
        result["sizes"].append(entry)
        _write(out, result)

    # Quality: the engine's output on one real (or generated) image, compared by the parent
    # with the fp32 reference from the same run.
    lr, _hr, desc = quality_input()
    q = {"input": desc}
    try:
        if engine.shapes.accepts(*lr.shape[:1], *lr.shape[2:]):
            sr = engine(lr).float().cpu()
            torch.save(sr, spec["quality_out"])
            q["output"] = spec["quality_out"]
        else:
            q["reason"] = f"quality image {tuple(lr.shape)} outside the engine's shape range"
    except Exception as e:  # noqa: BLE001
        q["reason"] = short_error(e)
    result["quality"] = q
    engine.close()
    _write(out, result)
    return result


def run_peak(spec: dict) -> dict:
    from srgan_fast.doctor.peak import measure_peaks  # the one peak measurement (doctor and bench)

    result = {"peaks": measure_peaks(spec["device"], spec.get("seconds", 1.0))}
    _write(spec["out"], result)
    return result


def run_pipeline(spec: dict) -> dict:
    from .backends import Case, SkipCase, open_case
    from .pipelines import image_pipeline, video_pipeline

    case = Case(**spec["case"])
    out = spec["out"]
    result = {"id": case.id, "label": case.title, "status": "running"}
    _write(out, result)
    try:
        engine = open_case(case, spec["weights"], spec["device"], [[1, *spec["size"]]], spec.get("threads"))
    except SkipCase as e:
        result.update(status="skipped", reason=str(e))
        _write(out, result)
        return result
    result["precision"] = engine.precision
    folder = Path(spec["folder"])
    h, w = spec["size"]
    result["image"] = image_pipeline(engine, h, w, spec.get("repeats", 3), folder)
    result["status"] = "ok"
    _write(out, result)
    try:
        result["video"] = video_pipeline(engine, h, w, spec.get("frames", 8), folder,
                                         spec.get("video_repeats", 1))
    except ImportError as e:
        result["video"] = {"status": "pending", "reason": short_error(e)}
    except Exception as e:  # noqa: BLE001 - the image figures stand; say what broke
        result["video"] = {"status": "error", "reason": short_error(e)}
    engine.close()
    _write(out, result)
    return result


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    import torch

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    jobs = {"case": run_case, "peak": run_peak, "pipeline": run_pipeline}
    try:
        jobs[spec["job"]](spec)
    except Exception as e:  # noqa: BLE001 - keep what was measured, say what broke
        prev = {}
        if Path(spec["out"]).is_file():
            prev = json.loads(Path(spec["out"]).read_text())
        if any("median_ms" in x for x in prev.get("sizes", [])):
            prev.update(status="ok", error=short_error(e))  # partial: keep the sizes it measured
        else:
            prev.update(status="error", reason=short_error(e))
        prev["traceback"] = traceback.format_exc()[-2000:]
        _write(spec["out"], prev)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
