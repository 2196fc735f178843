"""Smoke test of the benchmark machinery (bench/): the CLI on a tiny size with the torch engine,
and the pure functions behind the figures. No timing assertions: numbers belong to bench/."""
import json

import pytest
import torch

from bench import backends as B
from bench.report import derive, markdown
from bench.runner import percentile, summarize


def test_cli_writes_stamped_json_markdown_and_plot(tmp_path, capsys):
    from bench.cli import main
    from srgan_fast.checkpoints import save_generator
    from srgan_fast.model import Generator

    # A 1-block generator keeps the test fast; the machinery does not depend on depth.
    weights = tmp_path / "g.safetensors"
    save_generator(Generator(num_blocks=1), weights)
    out = tmp_path / "res"
    rc = main(["--device", "cpu", "--cases", "torch-fp32,triton-*,tensorrt-*", "--sizes", "1x8x8",
               "--weights", str(weights), "--threads", "1", "--warmup", "1", "--repeats", "2",
               "--min-time", "0", "--no-peak", "--no-pipelines", "--out", str(out)])
    assert rc == 0
    run = json.loads((out / "results.json").read_text())
    env = run["env"]
    for key in ("device_name", "cpu", "date", "commit", "libraries", "suite_device"):
        assert key in env
    assert env["libraries"]["torch"] == torch.__version__.split("+")[0] or \
        env["libraries"]["torch"].startswith(torch.__version__.split("+")[0])

    by_id = {c["id"]: c for c in run["cases"]}
    base = by_id["torch-fp32"]
    assert base["status"] == "ok" and base["precision"] == "fp32"
    (size,) = base["sizes"]
    assert (size["batch"], size["h"], size["w"]) == (1, 8, 8)
    assert size["n"] >= 2 and size["median_ms"] > 0 and size["p99_ms"] >= size["median_ms"]
    assert size["x_baseline"] == pytest.approx(1.0)
    assert size["rss_peak_mib"] > 0
    assert size["tflops"] == pytest.approx(2 * 2_218_176 * 64 / (size["median_ms"] / 1e3) / 1e12)
    assert base["quality"]["psnr_vs_fp32_db"] == "inf"  # the reference against itself (strict JSON)
    # Cases that cannot run here are listed with the reason, not silently dropped.
    assert "interpreter" in by_id["triton-fp32"]["reason"]
    if not torch.cuda.is_available():
        assert by_id["tensorrt-fp16"]["reason"].startswith("needs CUDA")

    md = (out / "results.md").read_text()
    assert env["device_name"] in md and "batch 1, 8x8 LR" in md and "1.00×" in md
    assert "g.safetensors (sha256" in md
    assert "## Summary" in md and "## Not measured (or only partly)" in md and "interpreter only on CPU" in md
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_size_is_one_line_error(capsys):
    from bench.cli import main

    assert main(["--sizes", "1x0x8", "--list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: bad size")


def test_percentile_and_summary():
    assert percentile([3, 1, 2], 50) == 2
    assert percentile([0, 10], 99) == pytest.approx(9.9)
    s = summarize([0.001, 0.002, 0.003, 0.010])
    assert s["median_ms"] == pytest.approx(2.5) and s["n"] == 4 and s["p99_ms"] > 9


def test_selection_keeps_baseline_first_and_parses_sizes():
    cases = B.select(B.cases_for("cpu"), "openvino-*")
    assert cases[0].id == B.BASELINE and {c.id for c in cases[1:]} == {"openvino-fp32", "openvino-bf16", "openvino-int8"}
    assert B.parse_sizes("128x128,4x270x480") == [(1, 128, 128), (4, 270, 480)]
    with pytest.raises(ValueError):
        B.parse_sizes("1x2x3x4")


def test_the_default_case_is_in_every_suite_and_the_quick_set():
    """A "default (auto)" row beside fp32/bf16/int8: what a command runs with no flags."""
    for device in ("cpu", "cuda"):
        (case,) = [c for c in B.cases_for(device) if c.id == B.DEFAULT]
        assert (case.backend, case.precision, case.title) == ("auto", "auto", "default (auto)")
        assert B.static_skip(case, device) is None
    assert B.DEFAULT in B.QUICK_CASES and B.DEFAULT in B.QUICK_LARGE


def test_static_skips_on_cpu():
    by_id = {c.id: c for c in B.cases_for("cpu")}
    assert "interpreter" in B.static_skip(by_id["triton-fp32"], "cpu")
    assert B.static_skip(by_id["torch-fp32"], "cpu") is None
    gpu = {c.id: c for c in B.cases_for("cuda")}
    assert "CPU suite" in B.static_skip(gpu["openvino-int8"], "cuda")


def test_open_failure_becomes_skip_reason(tmp_path):
    from srgan_fast.checkpoints import save_generator
    from srgan_fast.model import Generator

    path = tmp_path / "g.safetensors"
    save_generator(Generator(num_blocks=1), path)
    with pytest.raises(B.SkipCase, match="no int8 path"):
        B.open_case(B.Case("torch-int8", "torch", "int8"), str(path), "cpu")


def test_derived_figures_against_hand_computation():
    def entry(ms, n=1):
        return {"batch": n, "h": 10, "w": 20, "median_ms": ms, "p99_ms": ms, "first_call_ms": ms,
                "n": 3, "rss_peak_mib": 100.0, "rss_run_mib": 10.0}

    run = {"peaks": {"fp32": {"tflops": 1.0}, "bf16": {"tflops": 4.0}},
           "cases": [{"id": "torch-fp32", "label": "base", "status": "ok", "precision": "fp32",
                      "sizes": [entry(100.0)]},
                     {"id": "x-bf16", "label": "fast", "status": "ok", "precision": "bf16",
                      "sizes": [entry(25.0)]},
                     {"id": "y", "label": "gone", "status": "skipped", "reason": "needs CUDA"}]}
    derive(run)
    base, fast = run["cases"][0]["sizes"][0], run["cases"][1]["sizes"][0]
    tflops = 2 * 2_218_176 * 200 / 0.1 / 1e12
    assert base["tflops"] == pytest.approx(tflops) and base["pct_of_peak"] == pytest.approx(100 * tflops)
    assert fast["frames_per_s"] == pytest.approx(40.0)
    assert fast["x_baseline"] == pytest.approx(4.0)  # same size, a quarter of the time
    assert fast["pct_of_peak"] == pytest.approx(100 * 4 * tflops / 4.0)
    run.update(env={"device_name": "TestCPU", "suite_device": "cpu", "cpu": "TestCPU", "usable_cpus": 2,
                    "torch_threads": 2, "isa": [], "libraries": {"torch": "x"}, "commit": "abc",
                    "date": "today", "load_average": [0.1]},
               weights={"desc": "random"}, set="custom", settings={}, sizes=[[1, 10, 20]], pipelines=[])
    run["cases"][1]["error"] = "worker died (exit code -9)"
    md = markdown(run)
    assert "needs CUDA" in md and "4.00×" in md
    assert "| fast | partial | worker died (exit code -9) |" in md


def test_worker_failure_is_reported_not_raised(tmp_path):
    from bench.cli import _spawn

    spec = {"job": "case", "device": "cpu", "weights": str(tmp_path / "missing.safetensors"),
            "threads": 1, "settings": {}, "sizes": [[1, 8, 8]], "quality_out": str(tmp_path / "q.pt"),
            "case": {"id": "nope-fp32", "backend": "nope", "precision": "fp32", "options": {}, "label": ""}}
    result = _spawn(spec, tmp_path, "nope", timeout=120)
    assert result["status"] == "skipped" and "unknown backend" in result["reason"]


def test_unknown_case_names_are_an_error_listing_valid_ids(capsys):
    from bench.cli import main

    assert main(["--device", "cpu", "--cases", "nope", "--list"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --cases: nope matches no case") and "torch-fp32" in err
    with pytest.raises(ValueError):
        B.select(B.cases_for("cpu"), "torch-fp32,typo-*")


def test_saved_results_with_more_cases_are_not_replaced_without_asking(tmp_path):
    from bench.cli import refuse_shrinking
    from srgan_fast.errors import SrganError

    (tmp_path / "results.json").write_text(json.dumps({"cases": [
        {"id": "torch-fp32", "status": "ok"}, {"id": "openvino-int8", "status": "ok"},
        {"id": "tensorrt-fp16", "status": "skipped"}]}))
    with pytest.raises(SrganError, match="openvino-int8.*--replace"):
        refuse_shrinking(tmp_path, ["torch-fp32"])
    refuse_shrinking(tmp_path, ["torch-fp32", "openvino-int8"])  # same or more cases: allowed
    refuse_shrinking(tmp_path / "absent", ["torch-fp32"])          # nothing saved: allowed


def test_service_cpu_is_split_by_process_role_per_image():
    import subprocess
    import sys

    psutil = pytest.importorskip("psutil")
    from bench.serve import cpu_by_role, tree_cpu_seconds

    before = {1: ("ray::ProxyActor", 1.0), 2: ("raylet", 0.5)}
    after = {1: ("ray::ProxyActor", 3.0), 2: ("raylet", 0.5), 3: ("ray::ServeReplica:x:Upscaler", 8.0)}
    assert cpu_by_role(before, after, images=4) == {"ray::ServeReplica:x:Upscaler": 2000.0,
                                                    "ray::ProxyActor": 500.0}  # idle raylet left out
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        seen: dict = {}
        total = tree_cpu_seconds(psutil.Process().pid, seen)
        assert child.pid in seen and seen[child.pid][0] == psutil.Process(child.pid).name()
        assert total == pytest.approx(sum(c for _, c in seen.values())) and total > 0
    finally:
        child.kill()
        child.wait()
