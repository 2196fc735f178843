"""``python -m srgan_fast.doctor`` end to end on the CPU: a healthy install passes, a layer that
overflows fp16 fails naming the layer, a tampered artifact fails, bad input is one line.

The tiny 2-block generator (conftest) and its shared artifact cache keep the builds short; speed
is timed at 16x16 (``--size``), since these tests check the verdicts, not the speed.
"""
import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from conftest import has_module, image_folder, make_tiny_generator, tiny_weights

CPU_BUILD = all(has_module(m) for m in ("onnx", "onnxscript", "onnxruntime", "openvino", "nncf"))
needs_build = pytest.mark.skipif(not CPU_BUILD, reason="the CPU build needs onnx, onnxscript, onnxruntime, "
                                                       "openvino and nncf (pip install 'srgan_fast[cpu]')")


def doctor(*argv):
    """(exit status, stdout, stderr) of the doctor run in this process (its workers are children)."""
    from srgan_fast.doctor.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(weights, shared artifact cache, a 3-image calibration folder: fp16/int8 builds stay short)."""
    weights, cache = tiny_weights(tmp_path_factory)
    return weights, cache, image_folder(tmp_path_factory.mktemp("doctor_calib"), 3, (48, 48), seed=5)


def quick(tiny, *argv):
    weights, cache, calib = tiny
    return doctor("--quick", "--device", "cpu", "--size", "16x16", "--weights", str(weights), "--cache", str(cache),
                  "--calib", str(calib), *argv)


@pytest.fixture(scope="module")
def healthy(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("doctor") / "doctor.json"
    code, stdout, stderr = quick(tiny, "--json", str(out))
    return code, stdout, json.loads(out.read_text()), out


def _rows(doc, backend):
    return {r["asked"]: r for r in doc["rows"] if r["backend"] == backend}


@needs_build
def test_quick_passes_on_a_healthy_install(healthy):
    from srgan_fast.precision import plan

    code, stdout, doc, _ = healthy
    assert code == 0 and doc["exit_status"] == 0, stdout
    for backend in ("torch", "openvino", "onnxruntime"):
        rows = _rows(doc, backend)
        assert set(rows) == {"auto", "fp32", "fp16", "bf16", "int8"}
        assert rows["auto"]["runs"] == plan(backend, "auto", "cpu").runs      # the default, checked too
        assert rows["auto"]["note"].startswith("auto: ") and rows["auto"]["engine"]["requested_precision"] == "auto"
        ran = [r for r in rows.values() if r["status"] != "skip"]
        assert ran and all(r["status"] == "ok" for r in ran), [r["reason"] for r in ran]
        for r in ran:
            assert r["parity"]["status"] == "ok" and r["tiling"]["status"] == "ok" and r["tiling"]["tiles"] == 4
            assert r["speed"]["frames_per_s"] > 0 and r["speed"]["size"] == [1, 16, 16]
            assert r["memory"]["kind"] == "rss" and r["memory"]["peak_mib"] > 0
    assert _rows(doc, "torch")["int8"]["status"] == "skip" and "no int8 path" in _rows(doc, "torch")["int8"]["reason"]
    assert _rows(doc, "openvino")["int8"]["runs"] == "int8"
    (trt,) = _rows(doc, "tensorrt").values()
    assert trt["status"] == "skip" and "needs an NVIDIA GPU" in trt["reason"]
    (tri,) = _rows(doc, "triton").values()
    assert tri["status"] == "skip" and ("--quick" in tri["reason"] or "not installed" in tri["reason"])
    # One line per row on stdout, skips with their reason; no traceback anywhere.
    assert re.search(r"^tensorrt +- +- +skip: needs an NVIDIA GPU", stdout, re.M) and "Traceback" not in stdout
    assert doc["versions"]["torch"] == torch.__version__ and doc["device"]["kind"] == "cpu"
    assert doc["peaks"]["fp32"]["tflops"] > 0


@needs_build
def test_the_json_has_exactly_the_documented_fields(healthy):
    from srgan_fast.doctor.report import DOCUMENTED, SCHEMA, SCHEMA_VERSION, flatten

    _, _, doc, _ = healthy
    assert (doc["schema"], doc["schema_version"]) == (SCHEMA, SCHEMA_VERSION)
    fields = flatten(doc)
    assert fields - DOCUMENTED == set(), "fields in the JSON that report.FIELDS does not document"
    assert DOCUMENTED - fields == set(), "documented fields missing from the JSON"


@needs_build
def test_show_prints_the_same_table_from_the_json(healthy):
    code, stdout, _, path = healthy
    code2, shown, _ = doctor("--show", str(path))
    assert code2 == 0 and shown == stdout


def overflowing_weights(path, block: int = 1):
    """Tiny weights whose ``blocks.<block>.conv1`` (BN folded) reaches ~8x fp16's largest value on
    the doctor's crops while the output is unchanged: the block's BN scale and shift grow by s
    (PReLU is positively homogeneous) and its second conv's weights shrink by s."""
    from srgan_fast.checkpoints import save_generator
    from srgan_fast.doctor.inputs import parity_crops
    from srgan_fast.doctor.ranges import layer_ranges

    g = make_tiny_generator(seed=1)
    before = dict(layer_ranges(g, [x for _, x in parity_crops()]))[f"blocks.{block}.conv1"]
    s = 8 * 65504.0 / before
    b = g.blocks[block]
    with torch.no_grad():
        b.bn1.weight.mul_(s)
        b.bn1.bias.mul_(s)
        b.conv2.weight.div_(s)
    save_generator(g, path, dtype=torch.float32)
    return path


def test_the_overflowing_weights_compute_the_same_image(tmp_path):
    from srgan_fast.checkpoints import load_generator
    from srgan_fast.doctor.inputs import parity_crops

    x = parity_crops()[1][1]
    scaled = load_generator(overflowing_weights(tmp_path / "w.safetensors"))
    with torch.inference_mode():
        assert torch.allclose(scaled(x), make_tiny_generator(seed=1)(x), atol=1e-5)


@needs_build
def test_a_layer_that_overflows_fp16_fails_and_is_named(tmp_path, tiny):
    weights = overflowing_weights(tmp_path / "overflow.safetensors")
    out = tmp_path / "doctor.json"
    code, stdout, _ = quick(tiny, "--weights", str(weights), "--backends", "torch,onnxruntime",
                            "--precisions", "fp16", "--no-peak", "--json", str(out))
    doc = json.loads(out.read_text())
    assert code == 1 and doc["exit_status"] == 1
    # Eager fp16 stores every layer in fp16: the row fails and names the first layer over 65504.
    bad = _rows(doc, "torch")["fp16"]
    assert bad["status"] == "FAIL" and bad["range"]["status"] == "FAIL" and bad["parity"]["status"] == "ok"
    assert bad["range"]["overflow"][0]["layer"] == "blocks.1.conv1"
    assert {o["layer"] for o in bad["range"]["overflow"]} == {"blocks.1.conv1", "blocks.1.prelu"}
    assert "torch fp16: range: blocks.1.conv1 reaches" in stdout and "65504" in stdout
    # The build's fp16 graph keeps those layers fp32: reported, and the artifact row passes.
    ok = _rows(doc, "onnxruntime")["fp16"]
    assert ok["status"] == "ok" and ok["range"]["status"] == "ok" and ok["range"]["kept_fp32"]
    assert "blocks.1.conv1 reaches" in ok["range"]["detail"] and "keeps" in ok["range"]["detail"]


def _tamper(folder, reseal: bool):
    """Add 0.1 to the last conv's bias in the artifact's graph (its output moves by 0.05); with
    ``reseal`` also rewrite the sidecar's size, sha256 and integrity hash, as a forger would."""
    import onnx
    from onnx import numpy_helper

    from srgan_fast.artifact import seal
    from srgan_fast.digest import file_sha256

    path = folder / "model.onnx"
    proto = onnx.load(str(path))
    bias = [n for n in proto.graph.node if n.op_type == "Conv"][-1].input[2]
    init = next(i for i in proto.graph.initializer if i.name == bias)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 0.1, bias))
    onnx.save(proto, str(path))
    if reseal:
        side = folder / "model.onnx.json"
        sc = json.loads(side.read_text())
        sc["artifact"].update(bytes=path.stat().st_size, sha256=file_sha256(path))
        side.write_text(json.dumps(seal(sc)))


@needs_build
@pytest.mark.parametrize("reseal", [True, False], ids=["output-tampered-resealed", "file-modified"])
def test_a_tampered_artifact_fails(tmp_path, tiny, healthy, reseal):
    built = Path(_rows(healthy[2], "onnxruntime")["fp32"]["artifact"]["path"]).parent  # tampered in a copy
    mine = tmp_path / "cache"
    shutil.copytree(built, mine / built.name)
    _tamper(mine / built.name, reseal)
    code, stdout, _ = quick(tiny, "--backends", "onnxruntime", "--precisions", "fp32", "--no-peak",
                            "--cache", str(mine))
    assert code == 1
    if reseal:  # passes every integrity check: only the parity check can catch it
        assert "onnxruntime fp32: parity:" in stdout and "tolerance atol 0.0001" in stdout
    else:
        assert "corrupt artifact: sha256 does not match" in stdout
    assert "Traceback" not in stdout


@pytest.mark.skipif(not has_module("triton"), reason="triton is not installed")
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU interpreter row")
def test_triton_runs_a_tiny_crop_in_the_interpreter(tiny, tmp_path):
    weights = tiny[0]
    code, stdout, _ = doctor("--device", "cpu", "--backends", "triton", "--precisions", "fp32", "--no-peak",
                             "--weights", str(weights), "--json", str(tmp_path / "d.json"))
    rows = _rows(json.loads((tmp_path / "d.json").read_text()), "triton")
    assert code == 0, stdout
    assert rows["fp32"]["status"] == "ok" and rows["fp32"]["parity"]["crops"][0]["crop"] == "baby 7x9"
    assert rows["fp32"]["speed"]["size"] == [1, 7, 9] and rows["fp32"]["tiling"]["status"] == "skip"
    assert "interpreter" in rows["fp32"]["tiling"]["detail"]
    assert rows["fp32"]["speed"]["fraction_of_peak"] is None  # --no-peak


@pytest.mark.parametrize("argv, message", [
    (["--backends", "torch,cudnn"], "--backends: unknown 'cudnn'"),
    (["--precisions", "fp8"], "--precisions: unknown 'fp8'"),
    (["--size", "big"], "--size: want HxW"),
    (["--timeout", "0"], "--timeout: want a positive number"),
    (["--calib", "/nonexistent/calib"], "--calib /nonexistent/calib: no such folder"),
    (["--weights", "/nonexistent/g.safetensors"], "/nonexistent/g.safetensors"),
    (["--json", "/nonexistent/folder/d.json"], "does not exist"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    from srgan_fast.doctor.cli import main

    assert main(["--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1], err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_gpu_is_refused(capsys):
    from srgan_fast.doctor.cli import main

    assert main(["--device", "cuda"]) == 2
    assert "error: --device cuda:" in capsys.readouterr().err


def test_table_refuses_files_that_are_not_doctor_json(tmp_path, capsys):
    from srgan_fast.doctor.cli import main

    (tmp_path / "x.json").write_text('{"format": "something else"}')
    assert main(["--table", str(tmp_path / "x.json")]) == 2
    assert "not a srgan_fast doctor JSON file" in capsys.readouterr().err


def test_a_worker_that_dies_leaves_failed_rows_with_its_last_words():
    """A backend process that crashes (here: a spec it cannot read) costs only its own rows."""
    from srgan_fast.doctor.spawn import run_backend

    # An int for the device: the worker dies on it with a traceback before its first row.
    rows = run_backend({"backend": "torch", "precisions": ["fp32", "bf16"], "device": 0,
                        "weights": None, "quick": True, "size": [1, 8, 8]}, timeout=300)
    assert [r["asked"] for r in rows] == ["fp32", "bf16"]
    assert all(r["status"] == "FAIL" and "exited with status 1" in r["reason"] for r in rows)
    assert "Error" in rows[0]["reason"]  # the child's last lines, e.g. its exception
