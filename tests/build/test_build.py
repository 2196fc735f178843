"""``python -m srgan_fast.build`` end to end, the artifact cache, and damaged or stale artifacts."""
import json
import os
import shutil

import pytest
import torch

from conftest import has_module, image_folder, tiny_weights

pytestmark = [pytest.mark.skipif(not (has_module("onnx") and has_module("onnxruntime") and has_module("openvino")),
                                reason="needs onnx, onnxruntime and openvino (pip install 'srgan_fast[cpu]')"),
              pytest.mark.usefixtures("one_torch_thread")]
SHAPES = "1x8x8:1x16x16:1x64x64"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from srgan_fast.checkpoints import save_generator
    from srgan_fast.model import Generator

    root = tmp_path_factory.mktemp("build")
    weights, _shared_cache = tiny_weights(tmp_path_factory)
    torch.manual_seed(3)
    save_generator(Generator(num_blocks=1).eval(), root / "other.safetensors", dtype=torch.float32)
    calib = image_folder(root / "calib", 2, (64, 64), seed=12)
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
    from srgan_fast.build import ensure_artifact

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


def test_build_auto_is_the_artifact_of_the_precision_it_picks(env, capsys, monkeypatch, fp32_artifact):
    """auto resolves before the cache key: it shares the artifact (key, folder, sidecar) of the
    precision it picks, and the build says what it picked and why."""
    from srgan_fast import precision
    from srgan_fast.build.spec import make_spec

    chosen = precision.choose("openvino", "cpu").precision
    auto, asked = (make_spec(env["w"], p, "openvino", SHAPES) for p in ("auto", chosen))
    assert auto.key() == asked.key() and auto.precision == chosen == auto.plan.asked
    assert auto.choice.precision == chosen and asked.choice is None
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)     # a CPU without bf16: fp32
    rc, out, err = _cli(["--weights", env["w"], "--out", env["cache"], "--shapes", SHAPES], capsys)
    assert rc == 0, err
    assert "precision fp32 (auto: this CPU has no native bf16" in out and "cache hit" in out, out
    assert f"artifact  {fp32_artifact.path}" in out
    sidecar = json.loads(open(str(fp32_artifact.path) + ".json").read())
    assert sidecar["precision_requested"] == sidecar["precision"] == "fp32"


@pytest.mark.skipif(not has_module("nncf"), reason="nncf is not installed")
def test_int8_gate_warns_and_strict_refuses(env, capsys, monkeypatch):
    from pathlib import Path

    from srgan_fast.eval import gate

    # A limit no build can meet: the gate must fail, refuse with --strict, warn without.
    monkeypatch.setattr(gate, "INT8_GATE_DB", -100.0)
    argv = ["--precision", "int8", "--weights", env["w"], "--out", env["cache"], "--calib", env["calib"],
            "--shapes", SHAPES]
    rc, out, err = _cli(argv + ["--strict"], capsys)
    assert rc == 2 and "refused: --strict" in err and "Traceback" not in err
    assert not list(Path(env["cache"]).glob("openvino-int8-*"))  # nothing half-built is left
    rc, out, err = _cli(argv, capsys)
    assert rc == 0 and "WARNING" in out + err and "int8 gate OVER" in out
    # Which data calibrated INT8 is said loudly (issue 13).
    assert f"INT8 CALIBRATION DATA: 2 images from {env['calib']} (your --calib folder)" in out
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


def test_calib_on_an_fp32_build_is_an_error(env, capsys):
    rc, out, err = _cli(["--precision", "fp32", "--calib", env["calib"], "--weights", env["w"],
                         "--out", env["cache"]], capsys)
    assert rc == 2 and "--calib" in err and "fp32 build does not read it" in err and err.count("\n") == 1


def test_missing_srgan_weights_is_one_line(env, capsys):
    from srgan_fast.checkpoints import MODELS

    if MODELS["srgan"].is_file():
        pytest.skip("the srgan weights are shipped in this checkout")
    rc, out, err = _cli(["--model", "srgan", "--out", env["cache"]], capsys)
    assert rc == 2 and "srgan weights are missing" in err and err.count("\n") == 1


def test_tensorrt_target_without_a_gpu_is_one_line(env, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: test_tensorrt.py covers this target")
    rc, out, err = _cli(["--target", "tensorrt", "--weights", env["w"], "--out", env["cache"]], capsys)
    assert rc == 2 and "NVIDIA GPU" in err and err.count("\n") == 1


def test_parse_shapes():
    from srgan_fast.artifact import ShapeProfile, parse_shapes

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
    from srgan_fast.build import ensure_artifact
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
    from srgan_fast.artifact import seal
    from srgan_fast.errors import SrganError

    path = _copy(fp32_artifact, tmp_path)
    side = path.with_name(path.name + ".json")
    sc = json.loads(side.read_text())
    sc["libraries"]["openvino"] = "0.0.1"  # built with another OpenVINO (a sealed, intact sidecar)
    side.write_text(json.dumps(seal(sc)))
    with engines.load_artifact(path) as engine:
        assert engine.path != str(path)  # rebuilt into the cache, the stale file is not loaded
        assert engine.sidecar["libraries"]["openvino"] != "0.0.1"
    sc["model"]["path"] = str(tmp_path / "gone.safetensors")  # ...and its weights are gone
    side.write_text(json.dumps(seal(sc)))
    with pytest.raises(SrganError, match="stale or foreign"):
        engines.load_artifact(path)
    with pytest.raises(SrganError, match="other weights"):  # foreign to the weights asked for
        engines.open_artifact(fp32_artifact.path, weights=env["other"], rebuild_stale=False)


@pytest.mark.parametrize("field,value", [
    (("model", "radius"), 0),                  # tiles without overlap: visible seams
    (("precision",), "bf16"),                  # a precision that is not what runs
    (("shapes", "max"), [1, 4096, 4096]),      # a profile the engine was never checked on
    (("model", "output_mapping"), "unit"),
])
def test_edited_sidecar_fields_are_refused(fp32_artifact, tmp_path, field, value):
    """Every sidecar field is covered by its integrity hash, not only the artifact file (issue 10)."""
    from srgan_fast import engines
    from srgan_fast.errors import SrganError

    path = _copy(fp32_artifact, tmp_path)
    side = path.with_name(path.name + ".json")
    sc = json.loads(side.read_text())
    node = sc
    for k in field[:-1]:
        node = node[k]
    node[field[-1]] = value
    side.write_text(json.dumps(sc, indent=2))
    with pytest.raises(SrganError, match="edited after the build"):
        engines.open_artifact(path)


def test_unknown_engine_options_are_errors(env, fp32_artifact):
    from srgan_fast import engines
    from srgan_fast.errors import SrganError

    with pytest.raises(SrganError, match=r"unknown option 'thread' for the openvino engine \(accepted: .*threads"):
        engines.open_engine("openvino", "fp32", weights=env["w"], out=env["cache"], shapes=SHAPES, thread=2)
    with pytest.raises(SrganError, match=r"unknown option 'bogus' for the openvino engine"):
        engines.open_artifact(fp32_artifact.path, bogus=1)
    with pytest.raises(SrganError, match="built for cpu .* cannot run on cuda:0"):  # never silently ignored
        engines.open_artifact(fp32_artifact.path, device="cuda:0")
    with engines.open_artifact(fp32_artifact.path, device="cpu", threads=1) as engine:
        assert engine.info()["threads"] == 1
    with pytest.raises(SrganError, match=r"unknown option 'chanels_last' for the torch engine \(accepted: "
                                         r"channels_last, device\)"):
        engines.open_engine("torch", "fp32", weights=env["w"], chanels_last=True)


def test_openvino_compiled_model_cache_sits_beside_the_artifact(fp32_artifact, tmp_path):
    from srgan_fast import engines

    path = _copy(fp32_artifact, tmp_path)
    with engines.open_artifact(path) as engine:
        assert engine(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)
    blobs = list((path.parent / "openvino_cache").iterdir())
    assert blobs, "the second open should find OpenVINO's compiled model here"
    with engines.open_artifact(path) as engine:  # reopened from its cache: same results
        assert engine(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


def test_builds_leave_the_home_cache_alone(env, private_artifact_cache):
    """Without --out, builds go to $SRGAN_FAST_CACHE (set for the whole session by conftest),
    never into the user's ~/.cache/srgan_fast (issue 13)."""
    from conftest import REAL_CACHE

    from srgan_fast.build import ensure_artifact

    def snapshot():
        if not REAL_CACHE.exists():
            return None
        return sorted((str(p), p.stat().st_mtime_ns) for p in REAL_CACHE.rglob("*"))

    before = snapshot()
    record = ensure_artifact(env["w"], "fp32", "openvino", shapes="1x8x8:1x8x8:1x8x8", log=lambda m: None)
    assert private_artifact_cache in record.path.parents
    assert snapshot() == before


def test_older_format_is_stale_never_run(fp32_artifact, tmp_path):
    """An unsealed sidecar of an older format is reported as stale (rebuilt or refused), never opened."""
    from srgan_fast import engines
    from srgan_fast.errors import SrganError

    path = _copy(fp32_artifact, tmp_path)
    side = path.with_name(path.name + ".json")
    sc = json.loads(side.read_text())
    sc["format_version"] = 2
    del sc["integrity"]
    side.write_text(json.dumps(sc))
    with pytest.raises(SrganError, match=r"stale or foreign artifact \(artifact format 2 \(now 3\)"):
        engines.open_artifact(path, rebuild_stale=False)
