"""The doctor's checks one by one, on stand-in engines: each can fail, and says where."""
import pytest
import torch

from conftest import NearestEngine, make_tiny_generator


def test_layer_ranges_name_every_layer_in_forward_order():
    from srgan_fast.doctor.inputs import parity_crops
    from srgan_fast.doctor.ranges import layer_ranges

    ranges = layer_ranges(make_tiny_generator(), [x for _, x in parity_crops()])
    names = [n for n, _ in ranges]
    assert names[:6] == ["head", "head_prelu", "blocks.0.conv1", "blocks.0.prelu", "blocks.0.conv2", "blocks.0 (sum)"]
    assert names.index("body + head (sum)") < names.index("upsample.0.conv") < names.index("tail") == len(names) - 1
    assert all(v > 0 for _, v in ranges)


RANGES = [("head", 3.0), ("blocks.1.conv1", 1.3e5), ("blocks.1.prelu", 1.2e5), ("tail", 2.0)]


def test_eager_fp16_fails_on_the_first_overflowing_layer():
    from srgan_fast.doctor.ranges import range_check

    r = range_check(RANGES, "torch", "fp16", "bf16")
    assert r["status"] == "FAIL" and r["formats"] == ["fp16", "bf16"]
    assert r["detail"].startswith("blocks.1.conv1 reaches 1.3e+05 > 65504 (fp16 max), and 1 more layer")
    assert "runs bf16 here" in r["detail"]
    assert [o["layer"] for o in r["overflow"]] == ["blocks.1.conv1", "blocks.1.prelu"]


def test_artifact_fp16_passes_only_when_the_build_kept_layers_fp32():
    from srgan_fast.doctor.ranges import range_check

    kept = {"fp16_safety": {"kept_fp32": [{"node": "node_conv2d_3"}, {"node": "node_prelu_2"}]}}
    ok = range_check(RANGES, "tensorrt", "fp16", "fp16", kept)
    assert ok["status"] == "ok" and "keeps 2 layers fp32 (node_conv2d_3, node_prelu_2)" in ok["detail"]
    bad = range_check(RANGES, "tensorrt", "fp16", "fp16", {"fp16_safety": {"kept_fp32": []}})
    assert bad["status"] == "FAIL" and "kept no layer fp32" in bad["detail"]


def test_bf16_fails_only_on_infinity_and_fp32_is_not_applicable():
    from srgan_fast.doctor.ranges import range_check

    assert range_check(RANGES, "openvino", "bf16", "bf16")["status"] == "ok"
    inf = range_check([("head", float("inf"))], "torch", "bf16", "bf16")
    assert inf["status"] == "FAIL" and "head reaches inf" in inf["detail"]
    assert range_check(RANGES, "torch", "fp32", "fp32")["status"] == "n/a"
    assert range_check(RANGES, "openvino", "int8", "int8")["status"] == "n/a"


class WidthDependent(NearestEngine):
    """Output depends on the input's width: tiles then differ from the whole frame."""

    def _run(self, lr):
        return super()._run(lr) + lr.shape[-1] * 1e-3


class Poisoned(NearestEngine):
    def _run(self, lr):
        out = super()._run(lr).clone()
        out[0, 1, 2, 3] = float("nan")
        return out


def _nearest(x):
    return x.repeat_interleave(4, 2).repeat_interleave(4, 3)


def test_tiling_check_passes_an_exact_engine_and_fails_a_shape_dependent_one():
    from srgan_fast.doctor.checks import tiling_check
    from srgan_fast.doctor.inputs import tiling_frame

    frame, tile = tiling_frame()
    good = tiling_check(NearestEngine(), frame, tile, "fp32")
    assert good["status"] == "ok" and good["max_abs"] == 0 and good["tiles"] == 4 and good["frame"] == [31, 121]
    bad = tiling_check(WidthDependent(), frame, tile, "fp32")
    assert bad["status"] == "FAIL" and bad["max_abs"] > 1e-2


def test_parity_check_reports_nan_and_the_worst_crop():
    from srgan_fast.doctor.checks import parity_check
    from srgan_fast.doctor.inputs import parity_crops

    crops = parity_crops()
    refs = [_nearest(x) for _, x in crops]
    assert parity_check(NearestEngine(), crops, refs, "fp32")["status"] == "ok"
    bad = parity_check(Poisoned(), crops, refs, "fp32")
    assert bad["status"] == "FAIL" and bad["nan"] == len(crops) and bad["worst"]["worst_index"] == [0, 1, 2, 3]


def test_the_shipped_crops_are_odd_sized_real_pixels():
    from srgan_fast.doctor.inputs import parity_crops

    crops = parity_crops()
    assert [x.shape[-2:] for _, x in crops] == [(47, 61), (31, 29)]
    assert all(x.std() > 0.05 for _, x in crops)  # a photograph, not a flat patch
    assert [x.shape[-2:] for _, x in parity_crops(tiny=True)] == [(7, 9)]


def test_precision_and_backend_skips_say_why_and_how(monkeypatch):
    from srgan_fast.doctor import availability

    assert "no int8 path" in availability.precision_skip("torch", "int8", "cpu")
    assert availability.precision_skip("openvino", "bf16", "cpu") is None
    trt = availability.backend_skip("tensorrt", "cpu", quick=False)
    assert trt.startswith("needs an NVIDIA GPU") and ("pip install tensorrt-cu" in trt or "installed" not in trt)
    assert "run with --device cpu" in availability.backend_skip("openvino", "cuda:0", quick=False)
    monkeypatch.setattr(availability, "has_module", lambda name: name not in ("openvino", "triton"))
    assert "not installed: pip install 'srgan_fast[cpu]'" in availability.backend_skip("openvino", "cpu", False)
    assert availability.backend_skip("triton", "cpu", False).startswith("not installed: pip install triton")
    assert availability.backend_skip("torch", "cpu", True) is None


def test_an_undocumented_field_is_detected():
    from srgan_fast.doctor.report import DOCUMENTED, flatten

    doc = {"schema": "srgan_fast.doctor", "rows": [{"backend": "torch", "parity": None, "surprise": 1}]}
    assert flatten(doc) - DOCUMENTED == {"rows[].surprise"}


def test_non_finite_numbers_are_written_as_null():
    import json

    from srgan_fast.doctor.report import finite

    doc = finite({"a": float("inf"), "b": [1.0, float("nan")], "c": {"d": -float("inf")}})
    assert json.dumps(doc, allow_nan=False) == '{"a": null, "b": [1.0, null], "c": {"d": null}}'


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.gpu
def test_cuda_peak_and_speed_probe():
    from srgan_fast.doctor.peak import measure_peaks

    peaks = measure_peaks("cuda:0", 0.2)
    assert peaks["fp16"]["tflops"] > peaks["fp32"]["tflops"] > 0
