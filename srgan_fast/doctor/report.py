"""The doctor's JSON document (schema below, versioned) and its text table.

``FIELDS`` is the documentation of every field: the README's schema table is rendered from it
(``schema_markdown``), and a test checks that a real document has exactly these fields, so the
JSON cannot change without the documentation (and ``SCHEMA_VERSION`` when a field changes
meaning or goes away; adding a field is a new minor documentation entry, not a new version).
"""
from __future__ import annotations

import math

from srgan_fast.model import SCALE

SCHEMA = "srgan_fast.doctor"
SCHEMA_VERSION = 1

# (path, meaning). ``rows[]`` is each row; a path whose value is an object of free form (or a list
# of them) is documented as a whole and not descended into.
FIELDS = [
    ("schema", f'always "{SCHEMA}"'),
    ("schema_version", f"{SCHEMA_VERSION}; raised when a field changes meaning or is removed"),
    ("created", "UTC time the run ended, ISO 8601"),
    ("command", "the command line"),
    ("exit_status", "0: every row that ran passed; 1: a row failed a check"),
    ("wall_seconds", "the whole run, peak measurement and builds included"),
    ("summary", "{ok, fail, skip}: row counts"),
    ("device.kind", '"cpu" or "cuda"'),
    ("device.torch_device", '"cpu" or "cuda:N"'),
    ("device.name", "CPU model or GPU name"),
    ("device.id", "the identity artifacts are keyed by (CPU features, or GPU, compute capability, CUDA)"),
    ("device.threads", "torch threads"),
    ("device.usable_cpus", "CPUs this process may use"),
    ("device.cpu_isa", "the CPU features that choose kernels (avx512_bf16, amx_int8, ...)"),
    ("device.memory_gib", "GPU memory, or the machine's RAM"),
    ("device.compute_capability", 'GPU "major.minor", else null'),
    ("device.load_average", "1, 5 and 15-minute load average at the start: other work on the machine slows every row"),
    *[(f"versions.{k}", d) for k, d in [
        ("python", "Python"), ("srgan_fast", "this package"), ("torch", "torch"),
        ("cuda", "torch's CUDA, null on CPU builds"),
        ("cudnn", "cuDNN (GPU runs)"), ("driver", "NVIDIA driver (nvidia-smi; GPU runs)"), ("triton", "Triton"),
        ("tensorrt", "TensorRT"), ("pycuda", "pycuda"), ("openvino", "OpenVINO"), ("onnxruntime", "ONNX Runtime"),
        ("onnx", "onnx"), ("onnxscript", "onnxscript (the exporter)"), ("nncf", "NNCF (INT8)"), ("numpy", "numpy")]],
    ("model.name", "shipped model name (srgan, srresnet), or null for a weights file"),
    ("model.weights", "weights file"),
    ("model.sha256", "sha256 of the weights file"),
    ("model.macs_per_lr_pixel", "multiply-adds per LR pixel (TFLOP/s = 2 x this x pixels / time)"),
    ("settings.quick", "--quick"),
    ("settings.backends", "backends asked for"),
    ("settings.precisions", "precisions asked for"),
    ("settings.speed_size", "[N, H, W] LR batch timed (the Triton interpreter: its tiny crop)"),
    ("settings.parity_crops", "the shipped crops parity runs on, HxW"),
    ("settings.tiling", "{frame: [H, W], tile}: the tiling check's frame and tile side (LR pixels)"),
    ("settings.timing", "{warmup, repeats, min_time, max_time} of the speed check"),
    ("settings.peak_seconds", "seconds of each peak measurement (null: --no-peak)"),
    ("settings.cache", "artifact cache folder (null: $SRGAN_FAST_CACHE or ~/.cache/srgan_fast)"),
    ("settings.calib", "--calib folder of the fp16/int8 builds (null: the build's default)"),
    ("settings.tf32", "GPU: false, TF32 is off in the doctor's processes, so fp32 rows are IEEE fp32 "
                      "(torch's cuDNN default is TF32); CPU: null"),
    ("peaks", "{precision: {tflops, method[, estimated]}}: the measured peak (large matmul) per precision; "
              "{} with --no-peak"),
    ("rows[].backend", "torch, triton, openvino, onnxruntime or tensorrt"),
    ("rows[].asked", "precision asked (auto: what the commands run by default; runs says what it chose); "
                     "null for a backend that cannot run here at all"),
    ("rows[].runs", "precision that ran (what the engine reports), null when it did not open"),
    ("rows[].status", '"ok", "FAIL" or "skip"'),
    ("rows[].reason", "one line: why skipped, what failed, or the error"),
    ("rows[].note", "the precision policy's note (e.g. fp16 asked: running bf16)"),
    ("rows[].engine", "the engine's own info() (backend, precision, device, providers, hints, ...)"),
    ("rows[].artifact", "{path, built, build_seconds, shapes} for artifact backends, else null"),
    ("rows[].parity.status", '"ok" or "FAIL": every crop within the tolerance table and above the PSNR floor'),
    ("rows[].parity.precision", "tolerance row used (the precision that ran)"),
    ("rows[].parity.min_psnr_db", "the PSNR floor (parity.MIN_PSNR)"),
    ("rows[].parity.mean_abs", "largest per-crop mean |diff|"),
    ("rows[].parity.nan", "NaN count over the crops"),
    ("rows[].parity.inf", "inf count over the crops"),
    ("rows[].parity.worst", "the worst crop: crop, max_abs, mean_abs, psnr_db, worst_index [n, c, y, x], "
                            "worst_actual, worst_expected, nan, inf, atol, rtol, within_tolerance, ok"),
    ("rows[].parity.crops", "the same for every crop"),
    ("rows[].range.status", '"ok", "FAIL" or "n/a" (no 16-bit float storage)'),
    ("rows[].range.formats", "16-bit formats checked (asked or run)"),
    ("rows[].range.max_abs", "largest activation of any layer on the crops (fp32, BN folded)"),
    ("rows[].range.max_layer", "the layer holding it"),
    ("rows[].range.overflow", "[{layer, max_abs, format}] every layer over a format's largest value"),
    ("rows[].range.kept_fp32", "ONNX nodes the build kept fp32 in the fp16 graph (artifact backends)"),
    ("rows[].range.detail", "one line"),
    ("rows[].tiling.status", '"ok", "FAIL" or "skip" (with detail)'),
    ("rows[].tiling.detail", "why skipped, else null (a skipped check has every field, null)"),
    *[(f"rows[].tiling.{k}", d) for k, d in [
        ("frame", "[H, W] LR"), ("tile", "tile side, LR pixels"), ("tiles", "number of tiles"),
        ("radius", "overlap (receptive-field radius)"), ("max_abs", "max |tiled - whole|"),
        ("mean_abs", "mean |tiled - whole|"), ("psnr_db", "PSNR of tiled against whole"),
        ("worst_index", "[n, c, y, x] of max_abs"), ("worst_actual", "tiled value there"),
        ("worst_expected", "whole-frame value there"), ("nan", "NaN count"), ("inf", "inf count"),
        ("atol", "tolerance used"), ("rtol", "tolerance used"), ("within_tolerance", "bool")]],
    ("rows[].speed.status", '"ok", or "skip" when the size is outside the engine\'s shapes'),
    ("rows[].speed.detail", "why skipped, else null (a skipped check has every field, null)"),
    *[(f"rows[].speed.{k}", d) for k, d in [
        ("size", "[N, H, W] LR"), ("output", "[H, W] SR"), ("median_ms", "median latency of one call"),
        ("min_ms", "fastest call"), ("calls", "timed calls"),
        ("first_call_ms", "the first call (lazy init, autotuning)"),
        ("frames_per_s", "N / median"), ("tflops", "achieved TFLOP/s"),
        ("peak_tflops", "measured peak of the precision that ran"), ("fraction_of_peak", "tflops / peak_tflops"),
        ("timer", '"perf_counter" (CPU) or "cuda events"')]],
    ("rows[].memory.kind", '"rss" (process, CPU) or "cuda" (device)'),
    ("rows[].memory.peak_mib", "CPU: peak RSS of the process over the timed calls; GPU: peak device memory "
                               "in use minus the level before the engine opened"),
    ("rows[].memory.delta_mib", "CPU: the rise of RSS during the timed calls; GPU: null"),
    ("rows[].memory.torch_peak_mib", "GPU: torch.cuda.max_memory_allocated; CPU: null"),
    ("rows[].memory.method", "how it was measured"),
    ("rows[].extra", "backend-specific checks, e.g. {pycuda: {status, max_abs, ...}} for TensorRT"),
    ("rows[].seconds", "wall time of the row (build included)"),
    ("rows[].log", "the build's log lines (last 40)"),
    ("rows[].traceback", "Python traceback of an unexpected error (never printed), else null"),
]
DOCUMENTED = {path for path, _ in FIELDS}
NOTE = "Numbers that are not finite (the PSNR of identical images) are written as null: the file is strict JSON."


def finite(value):
    """The document with every inf/NaN float as None (strict JSON; jq and browsers read it)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def flatten(doc: dict) -> set[str]:
    """The field paths of a document, as ``FIELDS`` writes them (rows merged into ``rows[]``)."""
    out = set()

    def walk(value, path):
        if value is None and any(d.startswith(path + ".") for d in DOCUMENTED):
            return  # a check that did not run at all: null in place of its documented object
        if path in DOCUMENTED or not isinstance(value, dict):
            out.add(path)
            return
        for k, v in value.items():
            walk(v, f"{path}.{k}" if path else k)

    for k, v in doc.items():
        if k == "rows":
            for row in v:
                for rk, rv in row.items():
                    walk(rv, f"rows[].{rk}")
        else:
            walk(v, k)
    return out


def schema_markdown() -> str:
    lines = [f"| field (schema {SCHEMA_VERSION}) | meaning |", "|---|---|"]
    lines += [f"| `{path}` | {text.replace('|', chr(92) + '|')} |" for path, text in FIELDS]
    return "\n".join(lines + ["", NOTE])


# ---------------------------------------------------------------------------------------------
# The text table
# ---------------------------------------------------------------------------------------------

def _g(v, fmt="{:.3g}", none="-") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return none
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return fmt.format(v)


def _cells(row: dict, size: list) -> list[str]:
    p, r, t, s, m = (row.get(k) or {} for k in ("parity", "range", "tiling", "speed", "memory"))
    worst = p.get("worst") or {}
    parity = f"{p['status']} {_g(worst.get('max_abs'))}" + (
        f" ({_g(worst.get('psnr_db'), '{:.0f}')} dB)" if worst.get("psnr_db") is not None else "") if p else "-"
    if p and (p.get("nan") or p.get("inf")):
        parity += f" nan {p['nan']} inf {p['inf']}"
    tiling = (f"{t['status']} {_g(t.get('max_abs'))}" if t.get("status") != "skip" else "skip") if t else "-"
    if m.get("kind") == "rss":
        mem = f"+{_g(m.get('delta_mib'), '{:.0f}')}/{_g(m.get('peak_mib'), '{:.0f}')}"
    else:
        mem = _g(m.get("peak_mib"), "{:.0f}")
    frac = s.get("fraction_of_peak")
    ms = _g(s.get("median_ms"), "{:.4g}")
    if s.get("size") and s["size"] != size:  # the Triton interpreter's tiny crop
        ms += f" @{s['size'][1]}x{s['size'][2]}"
    return [parity, r.get("status", "-"), tiling, ms,
            _g(s.get("frames_per_s"), "{:.3g}"), _g(frac * 100 if frac is not None else None, "{:.0f}%"), mem]


HEADER = ["backend", "asked", "runs", "parity max|diff|", "range", "tiling", "ms", "frames/s", "peak",
          "mem MiB", "result"]


def _stamp(doc: dict) -> list[str]:
    d, v, m, s = doc["device"], doc["versions"], doc["model"], doc["settings"]
    if d["kind"] == "cpu":
        dev = f"cpu {d['name']}, {d['threads']} threads [{' '.join(d['cpu_isa'])}]"
    else:
        dev = f"cuda {d['name']}, {d['memory_gib']} GiB, sm {d['compute_capability']}"
    libs = ", ".join(f"{k} {v[k] or '-'}" for k in ("torch", "cuda", "driver", "triton", "tensorrt", "openvino",
                                                     "onnxruntime") if k not in ("cuda", "driver") or v[k])
    peaks = ", ".join(f"{k} {_g(p.get('tflops'), '{:.3g}')}" + (" (est.)" if p.get("estimated") else "")
                      for k, p in doc["peaks"].items() if p.get("tflops"))
    n, h, w = s["speed_size"]
    load = d.get("load_average")
    if load:
        dev += f"; load average {load[0]:.1f} at the start"
    return [f"srgan_fast doctor {v['srgan_fast']} on {dev}",
            f"model {m['name'] or m['weights']} (sha256 {m['sha256'][:12]}); {libs}",
            f"measured peak TFLOP/s: {peaks or ('not measured (--no-peak)' if s['peak_seconds'] is None else 'none')}",
            f"parity on {', '.join(s['parity_crops'])} crops vs fp32 PyTorch; tiling {s['tiling']['frame'][0]}x"
            f"{s['tiling']['frame'][1]} in {s['tiling']['tile']}-pixel tiles; speed at {n}x{h}x{w} LR -> "
            f"{SCALE * h}x{SCALE * w}" + (" (--quick)" if s["quick"] else "")]


def text(doc: dict) -> str:
    """The table a person reads: one line per row; failed rows' details below it."""
    table = []
    for row in doc["rows"]:
        if row["status"] == "skip":
            table.append([row["backend"], row["asked"] or "-", "-", f"skip: {row['reason']}"])
        elif row["runs"] is None:
            table.append([row["backend"], row["asked"], "-", f"FAIL: {row['reason']}"])
        else:
            table.append([row["backend"], row["asked"], row["runs"], *_cells(row, doc["settings"]["speed_size"]),
                          row["status"]])
    full = [r for r in table if len(r) == len(HEADER)]
    widths = [max(len(r[i]) for r in [HEADER, *(table if i < 3 else full)]) for i in range(len(HEADER))]
    out = _stamp(doc) + [""]
    for r in [HEADER, *table]:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() if len(r) == len(HEADER)
                   else "  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
    mem = "+rise/peak RSS of the process" if doc["device"]["kind"] == "cpu" else "peak device memory in use"
    out += ["", f"ms: median of one call; peak: TFLOP/s over the measured peak of the precision that ran; "
                f"mem: {mem} during the timed calls"]
    details = _details(doc)
    if details:
        out += ["", "failed:"] + details
    notes = [f"  {r['backend']} {r['asked']}: range: {r['range']['detail']}" for r in doc["rows"]
             if r["status"] == "ok" and (r.get("range") or {}).get("overflow")]
    if notes:  # layers over a 16-bit range that the build protected: said, not hidden
        out += ["", "notes:"] + notes
    s = doc["summary"]
    out += ["", f"{s['ok']} ok, {s['fail']} failed, {s['skip']} skipped; exit status {doc['exit_status']}"]
    return "\n".join(out)


def _details(doc: dict) -> list[str]:
    lines = []
    for row in doc["rows"]:
        if row["status"] != "FAIL":
            continue
        name = f"  {row['backend']} {row['asked']}"
        if row["runs"] is None:
            lines.append(f"{name}: {row['reason']}")
            continue
        p = row.get("parity") or {}
        if p.get("status") == "FAIL":
            w = p["worst"]
            lines.append(f"{name}: parity: {w['crop']}: max|diff| {_g(w['max_abs'])} at {w['worst_index']} "
                         f"(got {_g(w['worst_actual'], '{:.6g}')}, want {_g(w['worst_expected'], '{:.6g}')}), "
                         f"PSNR {_g(w['psnr_db'], '{:.2f}')} dB (floor {p['min_psnr_db']:g}), NaN {p['nan']}, "
                         f"inf {p['inf']}, tolerance atol {w['atol']:g} rtol {w['rtol']:g} ({p['precision']})")
        if (row.get("range") or {}).get("status") == "FAIL":
            lines.append(f"{name}: range: {row['range']['detail']}")
        t = row.get("tiling") or {}
        if t.get("status") == "FAIL":
            lines.append(f"{name}: tiling: tiled != whole: max|diff| {_g(t['max_abs'])} at {t['worst_index']} "
                         f"(tolerance atol {t['atol']:g})")
        for k, v in (row.get("extra") or {}).items():
            if v.get("status") == "FAIL":
                lines.append(f"{name}: {k}: max|diff| {_g(v.get('max_abs'))} against {v.get('against')}")
    return lines
