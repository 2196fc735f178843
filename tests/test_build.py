"""``python -m srgan_fast.build`` end to end, the artifact cache, and damaged or stale artifacts."""
import json
import os
import shutil

import pytest
import torch

from conftest import has_module, tiny_weights

pytestmark = [pytest.mark.skipif(not (has_module("onnx") and has_module("onnxruntime") and has_module("openvino")),
                                reason="needs onnx, onnxruntime and openvino (pip install 'srgan_fast[cpu]')"),
              pytest.mark.usefixtures("one_torch_thread")]
SHAPES = "1x8x8:1x16x16:1x64x64"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from srgan_fast.checkpoints import save_generator
    from srgan_fast.export import synthetic_images
    from srgan_fast.imageio import Image, write_image
    from srgan_fast.model import Generator

    root = tmp_path_factory.mktemp("build")
    weights, _shared_cache = tiny_weights(tmp_path_factory)
    torch.manual_seed(3)
    save_generator(Generator(num_blocks=1).eval(), root / "other.safetensors", dtype=torch.float32)
    calib = root / "calib"
    calib.mkdir()
    for i, img in enumerate(synthetic_images(2, (64, 64), seed=12)):
        write_image(calib / f"{i}.png", Image(rgb=img[0]))
    # Its own cache (these tests damage artifacts) sharing the session's ONNX exports.
    cache = root / "cache"
    cache.mkdir()
    (_shared_cache / "exports").mkdir(parents=True, exist_ok=True)
    (cache / "exports").symlink_to(_shared_cache / "exports", target_is_directory=True)
    return {"w": str(weights), "other": str(root / "other.safetensors"), "calib": str(calib), "cache": str(cache)}


def _cli(argv, capsys):
    from srgan_fast.build import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def fp32_artifact(env):
    from srgan_fast.artifacts import ensure_artifact

    return ensure_artifact(env["w"], "fp32", "openvino", shapes=SHAPES, out=env["cache"], log=lambda m: None)


def test_build_fp16_explains_itself_and_hits_the_cache(env, capsys):
    from srgan_fast.hardware import cpu_has_bf16

    argv = ["--precision", "fp16", "--weights", env["w"], "--out", env["cache"], "--calib", env["calib"],
            "--shapes", SHAPES]
    rc, out, err = _cli(argv, capsys)
    assert rc == 0, err
    runs = "bf16" if cpu_has_bf16() else "fp32"
    assert f"precision asked fp16, runs {runs}" in out
    assert "parity    ok" in out and "fp16      largest activation" in out
    assert "target    openvino" in out and "shapes    1x8x8:1x16x16:1x64x64" in out
    path = next(line.split()[1] for line in out.splitlines() if line.startswith("artifact"))
    sidecar = json.loads(open(path + ".json").read())
    assert sidecar["precision_requested"] == "fp16" and sidecar["precision"] == runs
    assert sidecar["fp16_safety"]["parity"]["ok"] and sidecar["fp16_safety"]["kept_fp32"] == []
    assert sidecar["parity"]["ok"] and sidecar["parity"]["precision"] == runs
    mtime = os.stat(path).st_mtime_ns
    rc, out, _ = _cli(argv, capsys)
    assert rc == 0 and "cache hit" in out
    assert os.stat(path).st_mtime_ns == mtime  # not rebuilt


@pytest.mark.skipif(not has_module("nncf"), reason="nncf is not installed")
def test_int8_gate_warns_and_strict_refuses(env, capsys, monkeypatch):
    from pathlib import Path

    from srgan_fast import artifacts

    # A limit no build can meet: the gate must fail, refuse with --strict, warn without.
    monkeypatch.setattr(artifacts, "INT8_GATE_DB", -100.0)
    argv = ["--precision", "int8", "--weights", env["w"], "--out", env["cache"], "--calib", env["calib"],
            "--shapes", SHAPES]
    rc, out, err = _cli(argv + ["--strict"], capsys)
    assert rc == 2 and "refused: --strict" in err and "Traceback" not in err
    assert not list(Path(env["cache"]).glob("openvino-int8-*"))  # nothing half-built is left
    rc, out, err = _cli(argv, capsys)
    assert rc == 0 and "WARNING" in out + err and "int8 gate OVER" in out
    path = next(line.split()[1] for line in out.splitlines() if line.startswith("artifact"))
    gate = json.loads(open(path + ".json").read())["quality_gate"]
    assert not gate["ok"] and gate["sets"]["eval"]["images"] == 2


@pytest.mark.parametrize("argv,message", [
    (["--shapes", "axb"], "cannot read"),
    (["--shapes", "1x64x64:1x32x32:1x128x128"], "min <= opt <= max"),
    (["--weights", "/nonexistent/w.safetensors"], "no such weights file"),
])
def test_bad_input_is_one_line(env, capsys, argv, message):
    argv = argv + (["--weights", env["w"]] if "--weights" not in argv else []) + ["--out", env["cache"]]
    rc, out, err = _cli(argv, capsys)
    assert rc == 2 and message in err and err.count("\n") == 1


def test_tensorrt_target_without_a_gpu_is_one_line(env, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: test_tensorrt.py covers this target")
    rc, out, err = _cli(["--target", "tensorrt", "--weights", env["w"], "--out", env["cache"]], capsys)
    assert rc == 2 and "NVIDIA GPU" in err and err.count("\n") == 1


def test_parse_shapes():
    from srgan_fast.artifacts import ShapeProfile, parse_shapes

    assert parse_shapes(None) is None
    assert parse_shapes("270x480") == ShapeProfile((1, 1, 1), (1, 270, 480), (1, 270, 480))
    assert parse_shapes("1x8x8:2x16x16:4x64x32") == ShapeProfile((1, 8, 8), (2, 16, 16), (4, 64, 32))


def _copy(art, tmp_path):
    dst = tmp_path / art.path.parent.name
    shutil.copytree(art.path.parent, dst)
    return dst / art.path.name


def test_load_artifact_opens_the_right_backend(fp32_artifact):
    from srgan_fast import engines

    with engines.load_artifact(fp32_artifact.path.parent) as engine:
        assert engine.name == "openvino" and engine.precision == "fp32"
        assert engine.shapes.max_hw == (64, 64)  # an explicit --shapes is enforced
        assert engine(torch.rand(1, 3, 9, 11)).shape == (1, 3, 36, 44)


@pytest.mark.parametrize("damage,message", [
    ("truncate", "truncated"), ("flip", "sha256"), ("json", "corrupt sidecar"),
    ("foreign_sidecar", "foreign"), ("no_sidecar", "not a srgan_fast artifact"),
])
def test_damaged_artifacts_are_reported_not_loaded(fp32_artifact, tmp_path, damage, message):
    from srgan_fast import engines
    from srgan_fast.errors import SrganError

    path = _copy(fp32_artifact, tmp_path)
    side = path.with_name(path.name + ".json")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:-10] + bytes(b ^ 0xFF for b in data[-10:]))
    elif damage == "json":
        side.write_text(side.read_text()[:50])
    elif damage == "foreign_sidecar":
        side.write_text(json.dumps({"format": "something.else"}))
    else:
        side.unlink()
    with pytest.raises(SrganError, match=message):
        engines.load_artifact(path)


def test_damaged_cache_entry_is_reported_then_rebuilt_on_request(env, fp32_artifact):
    from srgan_fast.artifacts import ensure_artifact
    from srgan_fast.errors import SrganError

    path = fp32_artifact.path
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(SrganError, match="truncated"):
        ensure_artifact(env["w"], "fp32", "openvino", shapes=SHAPES, out=env["cache"], log=lambda m: None)
    art = ensure_artifact(env["w"], "fp32", "openvino", shapes=SHAPES, out=env["cache"], rebuild=True,
                          log=lambda m: None)
    assert art.built and art.path == path and art.sidecar["parity"]["ok"]


def test_stale_or_foreign_artifacts_are_rebuilt_or_refused(env, fp32_artifact, tmp_path):
    from srgan_fast import engines
    from srgan_fast.errors import SrganError

    path = _copy(fp32_artifact, tmp_path)
    side = path.with_name(path.name + ".json")
    sc = json.loads(side.read_text())
    sc["libraries"]["openvino"] = "0.0.1"  # built with another OpenVINO
    side.write_text(json.dumps(sc))
    with engines.load_artifact(path) as engine:
        assert engine.path != str(path)  # rebuilt into the cache, the stale file is not loaded
        assert engine.sidecar["libraries"]["openvino"] != "0.0.1"
    sc["model"]["path"] = str(tmp_path / "gone.safetensors")  # ...and its weights are gone
    side.write_text(json.dumps(sc))
    with pytest.raises(SrganError, match="stale or foreign"):
        engines.load_artifact(path)
    with pytest.raises(SrganError, match="other weights"):  # foreign to the weights asked for
        from srgan_fast.artifacts import load_artifact

        load_artifact(fp32_artifact.path, weights=env["other"], rebuild_stale=False)
