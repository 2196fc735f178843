"""Both shipped generators through the export path TensorRT and OpenVINO consume: the fp32 ONNX
matches PyTorch, and the fp16 graph made from measured activation ranges keeps every layer in
fp16's range and matches within the fp16 tolerance (fp16 storage emulated exactly, since ONNX
Runtime's CPU provider computes fp16 layers in fp32). The INT8 gate of both is in the README."""
import pytest
import torch
from conftest import has_module

from srgan_fast.checkpoints import MODELS, load_generator

pytestmark = [pytest.mark.skipif(not (has_module("onnx") and has_module("onnxruntime")),
                                 reason="needs onnx and onnxruntime (pip install 'srgan_fast[cpu]')"),
              pytest.mark.usefixtures("one_torch_thread")]


@pytest.mark.parametrize("model", list(MODELS))
def test_shipped_model_exports_and_fits_fp16(model, tmp_path):
    from srgan_fast.build.export import export_onnx, reference_outputs, run_onnx
    from srgan_fast.build.fp16 import activation_ranges, convert_fp16, emulate_onnx
    from srgan_fast.eval.datasets import calibration_images
    from srgan_fast.parity import assert_close

    if not MODELS[model].is_file():
        pytest.skip(f"shipped {model} weights missing: {MODELS[model]}")
    g = load_generator(MODELS[model])
    path = export_onnx(g, tmp_path / "g.onnx")
    calib, _source = calibration_images(count=4, crop=48)
    report = convert_fp16(path, tmp_path / "g16.onnx", activation_ranges(path, calib))
    assert report["max_abs"] < report["limit"] and report["kept_fp32"] == [], report
    x = [torch.rand(1, 3, 21, 17, generator=torch.Generator().manual_seed(5))]
    ref = reference_outputs(g, x)[0]
    assert_close(run_onnx(path, x)[0], ref, "fp32")
    assert_close(emulate_onnx(tmp_path / "g16.onnx", x)[0], ref, "fp16")


@pytest.mark.parametrize("model", list(MODELS))
def test_model_cards_describe_the_shipped_file(model):
    """The card's sha256 is the file's: a retrained model cannot ship with the old card's numbers."""
    import json

    from srgan_fast.digest import file_sha256

    weights = MODELS[model]
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["file"] == weights.name and card["sha256"] == file_sha256(weights)
    assert card["sha256"][:12] in weights.with_suffix(".md").read_text() or model == "srresnet"


def test_the_srgan_card_and_readme_tables_are_derived_from_its_record(tmp_path):
    """srgan_x4.md and the README's quality section say what srgan_x4.json says (no figure typed
    twice); a changed figure in the record makes them stale."""
    import json

    from bench import model_card

    for path, text in model_card.expected().items():
        assert path.read_text() == text, f"{path.name} is stale: run python -m bench.model_card"
    c = json.loads(model_card.RECORD.read_text())
    c["metrics"]["Set14"]["this model"]["niqe"] += 0.01
    (tmp_path / "srgan_x4.json").write_text(json.dumps(c))
    card, readme = model_card.expected(tmp_path / "srgan_x4.json").values()
    assert card != model_card.RECORD.with_suffix(".md").read_text()
    assert readme != model_card.README.read_text()
