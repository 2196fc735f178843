"""Derived figures and the three outputs of a run: results.json, results.md, results.png.

Derived per case and size (``derive``):
- frames/s = batch / median latency (one synchronous batch at a time);
- TFLOP/s = 2 x MACS_PER_LR_PIXEL x batch x h x w / median latency (analytic work; int8 counts
  operations the same way);
- % of peak = TFLOP/s / the measured peak of the precision that actually ran;
- x eager fp32 = the baseline's median per frame / this case's, same size, same run;
- quality: PSNR of the output against the baseline's output on the quality image.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .backends import BASELINE


def _per_frame(entry):
    return entry["median_ms"] / entry["batch"]


def derive(run: dict) -> dict:
    from srgan_fast.model import MACS_PER_LR_PIXEL

    peaks = run.get("peaks") or {}
    base = next((c for c in run["cases"] if c["id"] == BASELINE and c["status"] == "ok"), None)
    base_by_size = {(e["batch"], e["h"], e["w"]): e for e in (base or {}).get("sizes", [])
                    if "median_ms" in e}
    for case in run["cases"]:
        for e in case.get("sizes", []):
            if "median_ms" not in e:
                continue
            px = e["batch"] * e["h"] * e["w"]
            e["frames_per_s"] = e["batch"] / (e["median_ms"] / 1e3)
            e["tflops"] = 2 * MACS_PER_LR_PIXEL * px / (e["median_ms"] / 1e3) / 1e12
            peak = (peaks.get(case.get("precision")) or {}).get("tflops")
            e["pct_of_peak"] = 100 * e["tflops"] / peak if peak else None
            b = base_by_size.get((e["batch"], e["h"], e["w"]))
            e["x_baseline"] = _per_frame(b) / _per_frame(e) if b else None
            if "with_copies" in e:
                wc = e["with_copies"]
                wc["frames_per_s"] = e["batch"] / (wc["median_ms"] / 1e3)
                if b and "with_copies" in b:
                    wc["x_baseline"] = (b["with_copies"]["median_ms"] / b["batch"]) / (wc["median_ms"] / e["batch"])
    return run


def quality(run: dict) -> None:
    """Fill case["quality"] with PSNR/max error against the baseline output (parity.compare)."""
    import numpy as np
    import torch

    from srgan_fast.image.read import to_uint8
    from srgan_fast.eval.metrics import psnr_y
    from srgan_fast.parity import compare

    from .runner import quality_input

    base = next((c for c in run["cases"] if c["id"] == BASELINE), {})
    ref_path = (base.get("quality") or {}).get("output")
    ref = torch.load(ref_path) if ref_path and Path(ref_path).is_file() else None
    _, hr, _ = quality_input()
    hr_u8 = to_uint8(hr[0]).permute(1, 2, 0).numpy() if hr is not None else None
    for case in run["cases"]:
        q = case.get("quality")
        if not q or "output" not in q:
            continue
        path = q.pop("output")
        sr = torch.load(path) if Path(path).is_file() else None
        if sr is None:
            q["reason"] = "output file missing"
            continue
        if ref is not None:
            rep = compare(sr, ref, case.get("precision", "fp32"))
            q.update(psnr_vs_fp32_db=rep.psnr_db, max_abs_vs_fp32=rep.max_abs,
                     within_tolerance=rep.ok, nan=rep.nan, inf=rep.inf)
        else:
            q["reason"] = "no fp32 reference output in this run"
        if hr_u8 is not None:
            sr_u8 = to_uint8(sr[0]).permute(1, 2, 0).numpy()
            q["psnr_y_vs_hr_db"] = float(psnr_y(np.ascontiguousarray(sr_u8), hr_u8))


# --- formatting --------------------------------------------------------------------------------

def _f(x, fmt="{:.3g}", none="–"):
    if isinstance(x, str):  # "inf" / "-inf" as stored in results.json
        x = float(x)
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return none
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return fmt.format(x)


def _ms(x):
    if x is None:
        return "–"
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def stamp_lines(run: dict) -> list[str]:
    env = run["env"]
    libs = ", ".join(f"{k} {v}" for k, v in env["libraries"].items() if v)
    lines = [f"- **Device:** {env['device_name']}"]
    if env["suite_device"] == "cuda":
        lines.append(f"- **GPU:** {env.get('gpu_memory_gib')} GiB, {env.get('gpu_sms')} SMs, "
                     f"compute {env.get('compute_capability')}; driver {env.get('driver', '?')}, "
                     f"CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}; host CPU {env['cpu']}")
    else:
        lines.append(f"- **CPU:** {env['cpu']}; {env['usable_cpus']} usable CPUs, "
                     f"{env['torch_threads']} torch threads; ISA {' '.join(env['isa']) or '–'}")
    commit = (env.get("commit") or "unknown")[:12] + (" (dirty tree)" if env.get("dirty") else "")
    lines += [f"- **Libraries:** {libs}",
              f"- **Commit:** {commit}; **date:** {env['date']}",
              f"- **Weights:** {run['weights']['desc']}",
              f"- **Set:** {run['set']}; timing {run['settings']}; load average at start "
              f"{_f(env['load_average'][0], '{:.2f}') if env.get('load_average') else '–'}"]
    if run.get("busy_warning"):
        lines.append(f"- **Preliminary:** {run['busy_warning']}")
    return lines


def _quality_cell(case):
    q = case.get("quality") or {}
    return _f(q.get("psnr_vs_fp32_db"), "{:.1f}")


def size_table(run: dict, size) -> list[str]:
    cuda = run["env"]["suite_device"] == "cuda"
    n, h, w = size
    rows = []
    if cuda:
        head = ("| case | runs as | median ms (device) | median ms (+copies) | p99 ms | frames/s | "
                "torch peak MiB | device MiB | TFLOP/s | % of peak | × eager fp32 | PSNR vs fp32 dB | first call s |")
        rows += [head, "|" + "---|" * (head.count("|") - 1)]
    else:
        head = ("| case | runs as | median ms | p99 ms | frames/s | peak RSS MiB (+run) | TFLOP/s | "
                "% of peak | × eager fp32 | PSNR vs fp32 dB | first call s |")
        rows += [head, "|" + "---|" * (head.count("|") - 1)]
    for case in run["cases"]:
        if case["status"] != "ok":
            continue
        e = next((s for s in case["sizes"] if (s["batch"], s["h"], s["w"]) == tuple(size)), None)
        if e is None:
            continue
        if "median_ms" not in e:
            why = e.get("error") or e.get("skipped")
            rows.append(f"| {case['label']} | {case.get('precision')} | {why} |")
            continue
        common = [_f(e.get("tflops"), "{:.3f}"), _f(e.get("pct_of_peak"), "{:.0f}%"),
                  _f(e.get("x_baseline"), "{:.2f}×"), _quality_cell(case),
                  _f(e["first_call_ms"] / 1e3, "{:.2f}")]
        if cuda:
            copies = (e.get("with_copies") or {}).get("median_ms")  # absent: engine runs on the host
            cells = [_ms(e["median_ms"]), _ms(copies) if copies else "host engine", _ms(e["p99_ms"]),
                     _f(e["frames_per_s"], "{:.1f}"), _f(e.get("torch_alloc_peak_mib"), "{:.0f}"),
                     _f(e.get("device_used_peak_mib"), "{:.0f}")]
        else:
            cells = [_ms(e["median_ms"]), _ms(e["p99_ms"]), _f(e["frames_per_s"], "{:.2f}"),
                     f"{e['rss_peak_mib']:.0f} (+{max(0, e['rss_run_mib']):.0f})"]
        rows.append("| " + " | ".join([case["label"], case.get("precision", "?"), *cells, *common]) + " |")
    return rows


def summary_table(run: dict) -> list[str]:
    """One row per measured case: median per size with the ratio to eager fp32, % of peak at the
    largest size, PSNR vs fp32. This is the table the project README shows."""
    sizes = [tuple(s) for s in run["sizes"]]
    head = ["case", "runs as"] + [f"{n}x{h}x{w} ms (× fp32)" for n, h, w in sizes] + \
        ["% of peak", "PSNR vs fp32 dB", "open s"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in run["cases"]:
        if case["status"] != "ok":
            continue
        by = {(e["batch"], e["h"], e["w"]): e for e in case.get("sizes", []) if "median_ms" in e}
        cells = [f"{_ms(by[s]['median_ms'])} ({_f(by[s].get('x_baseline'), '{:.2f}')})" if s in by else "–"
                 for s in sizes]
        last = next((by[s] for s in reversed(sizes) if s in by), {})
        rows.append("| " + " | ".join([case["label"], case.get("precision", "?"), *cells,
                                       _f(last.get("pct_of_peak"), "{:.0f}%"), _quality_cell(case),
                                       _f(case.get("open_s"), "{:.1f}")]) + " |")
    return rows


def markdown(run: dict) -> str:
    env = run["env"]
    out = [f"# srgan_fast benchmark: {env['device_name']}", ""] + stamp_lines(run) + [""]
    out += ["## Summary", ""] + summary_table(run) + [""]
    for size in run["sizes"]:
        n, h, w = size
        out += [f"## batch {n}, {h}x{w} LR → {4 * h}x{4 * w}", ""] + size_table(run, size) + [""]

    q_rows = [c for c in run["cases"] if c["status"] == "ok" and c.get("quality")]
    if q_rows:
        desc = q_rows[0]["quality"].get("input", "")
        out += [f"## Quality per precision ({desc})", "",
                "| case | runs as | PSNR vs fp32 dB | max abs err | within parity tolerance | PSNR-Y vs HR dB |",
                "|---|---|---|---|---|---|"]
        for c in q_rows:
            q = c["quality"]
            if "psnr_vs_fp32_db" not in q:
                out.append(f"| {c['label']} | {c.get('precision')} | {q.get('reason', '–')} | | | |")
                continue
            out.append(f"| {c['label']} | {c.get('precision')} | {_f(q['psnr_vs_fp32_db'], '{:.1f}')} | "
                       f"{_f(q['max_abs_vs_fp32'], '{:.2g}')} | {'yes' if q['within_tolerance'] else 'no'} | "
                       f"{_f(q.get('psnr_y_vs_hr_db'), '{:.2f}')} |")
        out.append("")

    if run.get("pipelines"):
        out += ["## End-to-end pipelines against the bare engine", "",
                "| case | runs as | frame | decode ms | upscale ms | to uint8 ms | PNG encode ms | total ms | "
                "bare engine ms | engine share | video |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for p in run["pipelines"]:
            img = p.get("image")
            video = p.get("video") or {}
            if video.get("status") == "ok":
                vtext = (f"{video['pipeline_fps']:.3g} fps vs bare {video['bare_fps']:.3g} "
                         f"({100 * video['efficiency']:.0f}%), {video['frames']} frames")
                if video.get("io_fps"):
                    vtext += f"; I/O alone {video['io_fps']:.3g} fps"
            else:
                vtext = f"{video.get('status', '–')}: {video.get('reason', '')}" if video else "–"
            if p["status"] != "ok" or not img:
                out.append(f"| {p['label']} | – | {p.get('reason', p['status'])} | | | | | | | | {vtext} |")
                continue
            out.append(f"| {p['label']} | {p.get('precision')} | {img['h']}x{img['w']} | {_ms(img['decode_ms'])} | "
                       f"{_ms(img['upscale_ms'])} | {_ms(img['to_uint8_ms'])} | {_ms(img['encode_ms'])} | "
                       f"{_ms(img['total_ms'])} | {_ms(img['bare_engine_ms'])} | "
                       f"{100 * img['engine_share']:.0f}% | {vtext} |")
        out.append("")

    skipped = [c for c in run["cases"] if c["status"] != "ok" or c.get("error")]
    if skipped:
        out += ["## Not measured (or only partly)", "", "| case | status | reason |", "|---|---|---|"]
        out += [f"| {c['label']} | {'partial' if c['status'] == 'ok' else c['status']} | "
                f"{c.get('reason') or c.get('error', '')} |" for c in skipped]
        out.append("")

    if run.get("peaks"):
        out += ["## Measured peak (for % of peak)", "", "| precision | TFLOP/s | method |", "|---|---|---|"]
        out += [f"| {k} | {_f(v.get('tflops'), '{:.3f}')} | {v.get('method', '')} |"
                for k, v in run["peaks"].items()]
        out.append("")
    out += ["Columns are explained in bench/README.md.", ""]
    return "\n".join(out)


def plot(run: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = run["sizes"] or [[1, 1, 1]]
    colours = {"fp32": "#4c72b0", "bf16": "#dd8452", "fp16": "#55a868", "int8": "#c44e52"}
    fig, axes = plt.subplots(len(sizes), 1, figsize=(10, 1.2 + 0.42 * max(4, len(run["cases"])) * len(sizes)),
                             squeeze=False)
    for ax, size in zip(axes[:, 0], sizes):
        labels, fps, cols, notes = [], [], [], []
        for case in run["cases"]:
            e = next((s for s in case.get("sizes", []) if (s["batch"], s["h"], s["w"]) == tuple(size)
                      and "frames_per_s" in s), None)
            if case["status"] != "ok" or e is None:
                continue
            labels.append(f"{case['label']} [{case.get('precision')}]")
            fps.append(e["frames_per_s"])
            cols.append(colours.get(case.get("precision"), "#888888"))
            psnr = (case.get("quality") or {}).get("psnr_vs_fp32_db")
            note = _f(e.get("x_baseline"), "{:.2f}×")
            if psnr is not None and case["id"] != BASELINE:
                note += f", {_f(psnr, '{:.1f}')} dB"
            notes.append(note)
        y = range(len(labels))
        ax.barh(list(y), fps, color=cols)
        ax.set_yticks(list(y), labels, fontsize=8)
        ax.invert_yaxis()
        for yi, (v, note) in enumerate(zip(fps, notes)):
            ax.text(v, yi, f" {v:.3g} fps ({note})", va="center", fontsize=7)
        if fps:
            ax.set_xlim(0, max(fps) * 1.45)
        n, h, w = size
        ax.set_title(f"batch {n}, {h}x{w} → {4 * h}x{4 * w}: frames/s (× eager fp32, PSNR vs fp32)",
                     fontsize=9)
    env = run["env"]
    title = f"srgan_fast on {env['device_name']}"
    if run.get("busy_warning"):
        title += "\nPRELIMINARY: the machine was busy during this run"
    fig.suptitle(title, fontsize=11, color="#b00000" if run.get("busy_warning") else "black")
    libs = ", ".join(f"{k} {v}" for k, v in env["libraries"].items()
                     if v and k in ("torch", "openvino", "onnxruntime", "tensorrt", "triton"))
    extra = f"driver {env.get('driver')}, CUDA {env.get('cuda')}; " if env["suite_device"] == "cuda" else ""
    fig.text(0.01, 0.005, f"{extra}{libs}; commit {(env.get('commit') or '?')[:10]}; {env['date']}; "
             f"{run['set']} set", fontsize=7, color="#444444")
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plain(x):
    """Strict JSON: infinities (PSNR of identical outputs) become "inf", NaN becomes null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def write_all(run: dict, folder: Path) -> dict:
    """Write results.json, results.md, results.png into ``folder``; returns their paths."""
    from srgan_fast.atomic import atomic_output

    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / f"results.{k}" for k in ("json", "md", "png")}
    with atomic_output(paths["json"]) as tmp:
        tmp.write_text(json.dumps(_plain(run), indent=1, default=str, allow_nan=False))
    with atomic_output(paths["md"]) as tmp:
        tmp.write_text(markdown(run))
    with atomic_output(paths["png"]) as tmp:
        plot(run, tmp)
    return paths


def main(argv=None) -> int:
    """``python -m bench.report results.json [--summary]``: re-render a run as markdown."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.report")
    p.add_argument("json")
    p.add_argument("--summary", action="store_true", help="only the stamp and the summary table")
    args = p.parse_args(argv)
    run = json.loads(Path(args.json).read_text())
    if args.summary:
        print("\n".join(stamp_lines(run) + [""] + summary_table(run)))
    else:
        print(markdown(run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
