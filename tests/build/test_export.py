"""ONNX export, the fp16 safety conversion and INT8 Q/DQ quantization, each run on a CPU runtime."""
import numpy as np
import pytest
import torch

from conftest import has_module, make_tiny_generator

pytestmark = [pytest.mark.skipif(not (has_module("onnx") and has_module("onnxruntime")),
                                reason="needs onnx and onnxruntime (pip install 'srgan_fast[cpu]')"),
              pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from srgan_fast.build.export import export_onnx

    g = make_tiny_generator(per_channel_prelu=True)
    path = export_onnx(g, tmp_path_factory.mktemp("export") / "g.onnx", metadata={"test": "yes"})
    return g, path


def _images(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(*s, generator=gen) for s in shapes]


def test_graph_is_clean_dynamic_and_checked(exported):
    import onnx

    _, path = exported
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    assert {n.op_type for n in m.graph.node} <= {"Conv", "PRelu", "Add", "DepthToSpace", "Mul", "Clip"}
    assert {n.op_type for n in m.graph.node} >= {"Conv", "PRelu", "DepthToSpace", "Clip"}
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == 3
    assert all(d.dim_param for i, d in enumerate(dims) if i != 1), "batch/height/width must be symbolic"
    assert m.graph.input[0].name == "lr" and m.graph.output[0].name == "sr"
    assert {p.key: p.value for p in m.metadata_props}["test"] == "yes"


@pytest.mark.parametrize("shape", [(1, 3, 17, 23), (2, 3, 8, 9), (1, 3, 1, 1)])
def test_export_matches_torch_on_any_shape(exported, shape):
    from srgan_fast.build.export import reference_outputs, run_onnx
    from srgan_fast.parity import assert_close

    g, path = exported
    x = _images([shape])
    out, ref = run_onnx(path, x)[0], reference_outputs(g, x)[0]
    assert out.shape == (shape[0], 3, shape[2] * 4, shape[3] * 4)
    assert_close(out, ref, "fp32")
    assert out.min() >= 0 and out.max() <= 1  # mapping and clamp are inside the graph


def test_fp16_graph_keeps_fp32_io_and_matches(exported, tmp_path):
    import onnx

    from srgan_fast.build.export import reference_outputs, run_onnx
    from srgan_fast.build.fp16 import activation_ranges, convert_fp16, emulate_onnx
    from srgan_fast.parity import assert_close

    g, path = exported
    calib = _images([(1, 3, 24, 24)] * 2, seed=1)
    ranges = activation_ranges(path, calib)
    assert ranges["sr"] <= 1.0 and max(ranges.values()) > 0
    report = convert_fp16(path, tmp_path / "g16.onnx", ranges)
    assert report["kept_fp32"] == []
    m = onnx.load(str(tmp_path / "g16.onnx"))
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    conv_weights = {n.input[1] for n in m.graph.node if n.op_type == "Conv"}
    inits = {i.name: i.data_type for i in m.graph.initializer}
    assert {inits[w] for w in conv_weights} == {onnx.TensorProto.FLOAT16}
    x = _images([(1, 3, 19, 13)], seed=2)
    ref = reference_outputs(g, x)[0]
    assert_close(run_onnx(tmp_path / "g16.onnx", x)[0], ref, "fp16")
    assert_close(emulate_onnx(tmp_path / "g16.onnx", x)[0], ref, "fp16")
    assert_close(emulate_onnx(path, x)[0], ref, "fp32")  # the emulator itself is exact on fp32


def test_fp16_safety_keeps_overflowing_layers_in_fp32(exported, tmp_path):
    """Scale the first upsample conv up by 1e5 and the next conv down by 1e5: the same function
    (PReLU and pixel shuffle are positively homogeneous), but activations overflow fp16. The
    measured ranges must keep exactly those layers fp32; a naive fp16 graph breaks."""
    import onnx
    from onnx import numpy_helper

    from srgan_fast.build.export import reference_outputs, run_onnx
    from srgan_fast.build.fp16 import FP16_SAFE_LIMIT, activation_ranges, convert_fp16, emulate_onnx
    from srgan_fast.parity import assert_close, compare

    g, path = exported
    m = onnx.load(str(path))
    scale = {"upsample.0.conv.weight": 1e5, "upsample.0.conv.bias": 1e5, "upsample.1.conv.weight": 1e-5}
    for init in m.graph.initializer:
        if init.name in scale:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(scale[init.name]),
                                                  init.name))
    hot = tmp_path / "hot.onnx"
    onnx.save(m, str(hot))
    x = _images([(1, 3, 20, 16)], seed=3)
    ref = reference_outputs(g, x)[0]
    assert_close(run_onnx(hot, x)[0], ref, "fp32", atol=1e-3)  # still the same function in fp32
    ranges = activation_ranges(hot, _images([(1, 3, 24, 24)] * 2, seed=4))
    assert max(ranges.values()) > 65504
    report = convert_fp16(hot, tmp_path / "safe16.onnx", ranges)
    kept = {k["node"] for k in report["kept_fp32"]}
    assert kept, "overflowing layers must be kept in fp32"
    assert all(ranges.get(t, 0) <= FP16_SAFE_LIMIT
               for n in onnx.load(str(tmp_path / "safe16.onnx")).graph.node if n.name not in kept
               for t in n.output if not t.endswith(("__to_fp16", "__to_fp32")))
    out = emulate_onnx(tmp_path / "safe16.onnx", x)[0]
    assert torch.isfinite(out).all()
    assert_close(out, ref, "fp16")
    assert_close(run_onnx(tmp_path / "safe16.onnx", x)[0], ref, "fp16")  # loads and runs on ORT too
    convert_fp16(hot, tmp_path / "naive16.onnx", ranges=None)  # no ranges: everything fp16
    naive = compare(emulate_onnx(tmp_path / "naive16.onnx", x)[0], ref, "fp16")
    assert not naive.ok and (naive.nan or naive.inf or naive.max_abs > 0.1)


def test_int8_qdq_is_symmetric_per_channel_and_close(exported, tmp_path):
    pytest.importorskip("nncf")
    import onnx
    from onnx import numpy_helper

    from srgan_fast.build.export import reference_outputs, run_onnx
    from srgan_fast.build.int8 import quantize_int8
    from srgan_fast.parity import assert_close

    g, path = exported
    report = quantize_int8(path, tmp_path / "q.onnx", _images([(1, 3, 24, 24)] * 3, seed=5))
    assert report["zero_points_all_zero"] and report["quantize_nodes"] > 0
    assert report["input_scale"]["set"] in (pytest.approx(1 / 255), pytest.approx(1 / 127))
    m = onnx.load(str(tmp_path / "q.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    conv_weight_dq = [n for n in m.graph.node if n.op_type == "DequantizeLinear"
                      and inits.get(n.input[0]) is not None and inits[n.input[0]].ndim == 4]
    assert len(conv_weight_dq) == sum(n.op_type == "Conv" for n in m.graph.node)
    for n in conv_weight_dq:  # per-channel: one scale per output channel, int8 weights
        assert inits[n.input[0]].dtype == np.int8
        assert inits[n.input[1]].shape == (inits[n.input[0]].shape[0],)
    x = _images([(1, 3, 21, 18)], seed=6)
    assert_close(run_onnx(tmp_path / "q.onnx", x)[0], reference_outputs(g, x)[0], "int8")


def test_calibration_images(tmp_path):
    from srgan_fast.errors import SrganError
    from srgan_fast.eval.datasets import calibration_images, synthetic_images
    from srgan_fast.image.read import Image, write_image

    a, b = synthetic_images(2, (20, 30), seed=9), synthetic_images(2, (20, 30), seed=9)
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and a[0].shape == (1, 3, 20, 30)
    assert 0 <= float(a[0].min()) and float(a[0].max()) <= 1 and float(a[0].std()) > 0.05
    for i, size in enumerate([(40, 50), (30, 60)]):
        write_image(tmp_path / f"{i}.png", Image(rgb=torch.rand(3, *size)))
    imgs, desc = calibration_images(tmp_path, crop=96)
    assert len(imgs) == 2 and {tuple(i.shape) for i in imgs} == {(1, 3, 30, 30)} and str(tmp_path) in desc
    with pytest.raises(SrganError, match="not a folder"):
        calibration_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SrganError, match="no images"):
        calibration_images(tmp_path / "empty")
