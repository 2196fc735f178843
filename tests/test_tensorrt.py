"""TensorRT engines: strongly typed builds from the fp32/fp16/Q-DQ graphs, both runtimes.

Everything past the first two tests needs an NVIDIA GPU and tensorrt: they skip, with the reason,
unless ``trt.Builder(trt.Logger())`` can actually be created.
"""
import json

import pytest
import torch

from conftest import has_module


def _builder_reason():
    if not has_module("tensorrt"):
        return "tensorrt is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    try:
        import tensorrt as trt

        if trt.Builder(trt.Logger()) is None:
            return "trt.Builder could not be created"
    except Exception as e:  # noqa: BLE001 - any failure means: no TensorRT here
        return f"trt.Builder could not be created ({e.__class__.__name__}: {e})"
    return None


SKIP = _builder_reason()
needs_trt = pytest.mark.skipif(SKIP is not None, reason=f"TensorRT unavailable: {SKIP}")
SHAPES = "1x1x1:1x24x32:2x64x64"


def test_modules_import_without_tensorrt():
    import srgan_fast.engines.tensorrt_builder as builder
    import srgan_fast.engines.tensorrt_engine as te
    import srgan_fast.engines.tensorrt_pycuda as pycuda_runner

    assert callable(builder.build_engine) and callable(te.from_artifact) and te.TensorRTEngine.name == "tensorrt"
    assert callable(pycuda_runner.PycudaRunner) and callable(pycuda_runner.check_sidecar)


@pytest.mark.skipif(SKIP is None, reason="TensorRT is available here")
def test_without_tensorrt_or_gpu_the_error_is_one_line(tmp_path):
    from srgan_fast import engines
    from srgan_fast.errors import SrganError

    with pytest.raises(SrganError) as info:
        engines.open_engine("tensorrt", "fp16", weights=tmp_path / "w.safetensors", out=tmp_path)
    assert "\n" not in str(info.value) and ("tensorrt" in str(info.value).lower() or "GPU" in str(info.value))


@pytest.fixture(scope="module")
def trt_env(tmp_path_factory):
    if SKIP is not None:
        pytest.skip(f"TensorRT unavailable: {SKIP}")
    from srgan_fast.checkpoints import save_generator
    from srgan_fast.model import Generator

    root = tmp_path_factory.mktemp("trt")
    torch.manual_seed(4)
    save_generator(Generator(num_blocks=2).eval(), root / "w.safetensors", dtype=torch.float32)
    return {"w": root / "w.safetensors", "cache": root / "cache"}


_engines = {}


def _open(env, precision):
    from srgan_fast import engines

    if precision not in _engines:
        _engines[precision] = engines.open_engine("tensorrt", precision, weights=env["w"], out=env["cache"],
                                                  shapes=SHAPES, log=lambda m: None)
    return _engines[precision]


@needs_trt
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "int8"])
@pytest.mark.parametrize("shape", [(1, 3, 17, 23), (2, 3, 64, 64), (1, 3, 1, 1)], ids=lambda s: "x".join(map(str, s)))
def test_tensorrt_matches_reference(trt_env, precision, shape):
    from srgan_fast.checkpoints import load_generator
    from srgan_fast.parity import assert_close

    engine = _open(trt_env, precision)
    want = {"fp32": "fp32", "fp16": "fp16", "bf16": "fp16", "int8": "int8"}[precision]
    assert engine.precision == want and engine.requested_precision == precision
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    out = engine(x)
    assert out.device.type == "cuda" and out.dtype == torch.float32
    g = load_generator(trt_env["w"])
    with torch.inference_mode():
        assert_close(out, g(x), engine.precision)


@needs_trt
@pytest.mark.gpu
def test_sidecar_profile_timing_cache_and_shape_limits(trt_env):
    engine = _open(trt_env, "fp16")
    sc = engine.sidecar
    assert sc["tensorrt"]["strongly_typed"] and sc["tensorrt"]["profile"]["max"] == [2, 3, 64, 64]
    assert sc["fp16_safety"]["parity"]["ok"]
    assert (trt_env["cache"] / "tensorrt-timing.cache").stat().st_size > 0
    assert engine.shapes.max_hw == (64, 64) and engine.shapes.max_batch == 2
    with pytest.raises(ValueError):
        engine(torch.rand(1, 3, 65, 8))


@needs_trt
@pytest.mark.gpu
def test_parser_errors_are_all_reported(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from srgan_fast.artifact import parse_shapes
    from srgan_fast.engines.tensorrt_builder import build_engine
    from srgan_fast.errors import SrganError

    x = helper.make_tensor_value_info("lr", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("sr", TensorProto.FLOAT, ["n", 3, "h", "w"])
    node = helper.make_node("NoSuchOp", ["lr"], ["sr"], name="bogus_node", domain="example.unknown")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("example.unknown", 1)])
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(SrganError, match="cannot parse") as info:
        build_engine(tmp_path / "bad.onnx", tmp_path / "bad.engine", parse_shapes("8x8"), log=lambda m: None)
    assert "NoSuchOp" in str(info.value) or "bogus_node" in str(info.value)
    assert not (tmp_path / "bad.engine").exists()


@needs_trt
@pytest.mark.gpu
def test_pycuda_runner_matches_torch_runtime_and_checks_sidecar(trt_env, tmp_path):
    pytest.importorskip("pycuda.driver", reason="pycuda is not installed")
    import shutil

    from srgan_fast.engines.tensorrt_pycuda import PycudaRunner
    from srgan_fast.errors import SrganError
    from srgan_fast.parity import assert_close

    engine = _open(trt_env, "fp16")
    x = torch.rand(1, 3, 20, 28)
    runner = PycudaRunner(engine.path)
    try:
        out = torch.from_numpy(runner(x.numpy()))
    finally:
        runner.close()
    assert_close(out, engine(x).cpu(), "fp32", atol=1e-3)  # same engine, two runtimes
    copy = tmp_path / "model.engine"
    shutil.copyfile(engine.path, copy)
    from srgan_fast.artifact import seal

    sc = json.loads(json.dumps(engine.sidecar))
    sc["libraries"]["tensorrt"] = "0.0.1"
    (tmp_path / "model.engine.json").write_text(json.dumps(seal(sc)))
    with pytest.raises(SrganError, match="rebuild"):
        PycudaRunner(copy)
