"""Every CPU engine and precision against the PyTorch fp32 reference, on odd shapes and batches."""
import pytest
import torch

from conftest import has_module, image_folder, tiny_weights

pytestmark = [pytest.mark.skipif(not (has_module("onnx") and has_module("onnxruntime")),
                                reason="needs onnx and onnxruntime (pip install 'srgan_fast[cpu]')"),
              pytest.mark.usefixtures("one_torch_thread")]

# (backend, precision asked); each is built once per session into a temporary cache.
# fp16 on the CPU runs bf16 (same engine as bf16); test_build covers that request end to end.
CASES = [("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"),
         ("onnxruntime", "fp32"), ("onnxruntime", "int8")]
SHAPES = [(1, 3, 17, 23), (2, 3, 16, 20), (1, 3, 1, 1)]


@pytest.fixture(scope="session")
def engine_env(tmp_path_factory):
    """Tiny weights on disk, a calibration folder of small images, and an empty cache."""
    root = tmp_path_factory.mktemp("engines")
    weights, cache = tiny_weights(tmp_path_factory)
    calib = image_folder(root / "calib", 3, (64, 64), seed=11)
    return {"weights": weights, "calib": calib, "cache": cache}


_opened = {}


def _engine(env, backend, precision):
    from srgan_fast import engines

    key = (backend, precision)
    if key not in _opened:
        calib = {"calib": env["calib"]} if precision == "int8" else {}  # --calib is for int8/fp16 only
        _opened[key] = engines.open_engine(backend, precision, weights=env["weights"], out=env["cache"],
                                           log=lambda m: None, **calib)
    return _opened[key]


@pytest.fixture(scope="session")
def reference(engine_env):
    from srgan_fast.checkpoints import load_generator

    g = load_generator(engine_env["weights"])

    def ref(x):
        with torch.inference_mode():
            return g(x)
    return ref


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("backend,precision", CASES, ids=lambda v: str(v))
def test_engine_matches_reference(engine_env, reference, backend, precision, shape):
    from srgan_fast.parity import assert_close

    if backend == "openvino" and not has_module("openvino"):
        pytest.skip("openvino is not installed")
    if precision == "int8" and not has_module("nncf"):
        pytest.skip("nncf is not installed")
    engine = _engine(engine_env, backend, precision)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    out = engine(x)
    assert out.dtype == torch.float32 and out.device == engine.torch_device and out.is_contiguous()
    assert out.shape == (shape[0], 3, shape[2] * 4, shape[3] * 4)
    assert engine.requested_precision == precision
    assert_close(out, reference(x), engine.precision)


@pytest.mark.skipif(not has_module("openvino"), reason="openvino is not installed")
def test_openvino_runs_the_precision_it_reports(engine_env):
    from srgan_fast.hardware import cpu_has_bf16

    fp32 = _engine(engine_env, "openvino", "fp32").info()
    # The CPU plugin would run bf16 for an fp32 model on AVX512-BF16 CPUs: the hint must be set.
    assert fp32["inference_precision_hint"] == "f32"
    assert set(fp32["runtime_precisions"]["Convolution"]) == {"f32"}
    bf16 = _engine(engine_env, "openvino", "bf16")
    want = "bf16" if cpu_has_bf16() else "fp32"
    assert bf16.precision == want
    if want == "bf16":
        assert set(bf16.info()["runtime_precisions"]["Convolution"]) == {"bf16"}
    if has_module("nncf"):
        int8 = _engine(engine_env, "openvino", "int8")
        convs = int8.info()["runtime_precisions"]["Convolution"]
        assert int8.precision == "int8" and set(convs) <= {"i8", "u8"}


@pytest.mark.skipif(not has_module("openvino"), reason="openvino is not installed")
def test_open_engine_cache_hit_and_sidecar(engine_env):
    from srgan_fast.build import ensure_artifact

    _engine(engine_env, "openvino", "fp32")
    art = ensure_artifact(engine_env["weights"], "fp32", "openvino", out=engine_env["cache"])
    assert not art.built  # second open: loaded from the cache, not rebuilt
    sc = art.sidecar
    assert sc["precision_requested"] == "fp32" and sc["precision"] == "fp32"
    assert sc["parity"]["ok"] and sc["parity"]["max_abs"] < 1e-4
    from srgan_fast.checkpoints import load_generator
    from srgan_fast.model import receptive_field_radius

    assert sc["model"]["radius"] == receptive_field_radius(load_generator(engine_env["weights"]))
    assert {"torch", "onnx", "openvino"} <= set(sc["libraries"])


@pytest.mark.skipif(not has_module("openvino"), reason="openvino is not installed")
def test_tiled_engine_equals_whole_frame(engine_env):
    from srgan_fast.image import tiling
    from srgan_fast.parity import assert_close

    engine = _engine(engine_env, "openvino", "fp32")
    x = torch.rand(1, 3, 45, 38, generator=torch.Generator().manual_seed(5))
    whole = engine(x)
    tiled = tiling.upscale(engine, x, tile=16)
    assert_close(tiled, whole, "fp32")


@pytest.mark.parametrize("backend", ["torch", "triton", "openvino", "onnxruntime", "tensorrt"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "int8"])
@pytest.mark.parametrize("device", ["cpu", "cuda:0"])
def test_precision_policy_answers_every_combination(backend, precision, device):
    """One home (srgan_fast.precision): a plan that says what runs, or one error line."""
    from srgan_fast.errors import SrganError
    from srgan_fast.precision import PRECISIONS, plan

    if backend in ("openvino",) and device != "cpu":
        pytest.skip("openvino here is a CPU target")
    try:
        p = plan(backend, precision, device)
    except SrganError as e:
        assert precision == "int8" and "\n" not in str(e) and ("tensorrt" in str(e) or "openvino" in str(e))
        return
    assert p.asked == precision and p.runs in PRECISIONS and p.note
    assert (p.graph is None) == (backend in ("torch", "triton"))
    if p.runs != precision:
        assert precision in p.note  # a mapped precision is always said


def test_int8_on_the_eager_backends_is_one_error_line(tmp_path):
    from srgan_fast import engines
    from srgan_fast.errors import SrganError

    for backend in ("torch", "triton"):
        with pytest.raises(SrganError, match=f"the {backend} engine has no int8 path"):
            engines.open_engine(backend, "int8", weights=tmp_path / "never-read.safetensors")
    with pytest.raises(SrganError, match="unknown precision 'fp8'"):
        engines.open_engine("torch", "fp8")


@pytest.mark.parametrize("flags,says", [({"avx512_bf16"}, "AVX512-BF16"), ({"avx512_bf16", "amx_bf16"}, "AMX")])
def test_fp16_note_names_the_units_the_cpu_has(monkeypatch, flags, says):
    from srgan_fast import hardware, precision

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    note = precision.plan("openvino", "fp16").note
    assert says in note and ("AMX kernels" in note) == ("amx_bf16" in flags)


def test_auto_picks_one_backend_everywhere(monkeypatch):
    """engines.default_backend and the build's target come from the same function."""
    from srgan_fast import engines, hardware
    from srgan_fast.build.spec import resolve_target

    monkeypatch.setattr(hardware, "has_module", lambda name: name == "onnxruntime")
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    assert engines.default_backend() == resolve_target("auto") == "onnxruntime"
    monkeypatch.setattr(hardware, "has_module", lambda name: False)
    assert engines.default_backend() == "torch"
    from srgan_fast.errors import SrganError

    with pytest.raises(SrganError, match="no build target"):
        resolve_target("auto")
