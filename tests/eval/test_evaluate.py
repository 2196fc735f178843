"""``python -m srgan_fast.evaluate`` on tiny folders it makes: the table, the JSON, and bad input."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import image_folder, tiny_weights


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    hr = image_folder(root / "Tiny", 2, (32, 28), seed=3)
    small = image_folder(root / "Small", 1, (12, 40), seed=4)
    weights, _ = tiny_weights(tmp_path_factory)
    return {"root": root, "hr": hr, "small": small, "weights": str(weights)}


def _run(argv, capsys):
    from srgan_fast.eval.evaluate import main

    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_table_and_json_carry_the_texture_ratio(data, capsys, tmp_path):
    out_json = tmp_path / "r.json"
    rc, out, err = _run(["--data", data["hr"], "--backend", "torch", "--weights", data["weights"],
                         "--json", out_json], capsys)
    assert rc == 0, err
    assert "| NIQE | texture ratio | grid |" in out.splitlines()[0]
    results = json.loads(out_json.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))["Tiny"]
    # The row names the model: a shipped model's name, else the weights file's name; HR rates the originals.
    assert set(results) == {"HR", "bicubic", f"srgan_fast {Path(data['weights']).name}"}
    assert results["HR"]["psnr_y"] is None and results["HR"]["texture_ratio"] == 1
    for row in results.values():
        # 32x28 images are too small for NIQE (two 96x96 patches) and the grid amplitude (32x32)
        assert row["niqe"] is None and row["grid"] is None
        assert row["images"] == 2 and 0 < row["texture_ratio"] < 5
        assert all("texture_ratio" in v for v in row["per_image"].values())
    # Bicubic smooths: far less fine texture than the HR images.
    assert results["bicubic"]["texture_ratio"] < 0.9


def test_too_small_hr_is_one_line(data, capsys):
    rc, out, err = _run(["--data", data["small"], "--bicubic"], capsys)
    assert rc == 2 and "too small to score" in err and err.count("\n") == 1 and "Traceback" not in err


def test_unwritable_json_is_one_line_before_any_work(data, capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        for target in (locked / "r.json", tmp_path / "missing" / "r.json", "/proc/r.json"):
            rc, out, err = _run(["--data", data["hr"], "--bicubic", "--json", target], capsys)
            if os.geteuid() == 0 and target == locked / "r.json":
                continue  # root writes anywhere
            assert rc == 2 and "--json" in err and err.count("\n") == 1 and out == ""
    finally:
        os.chmod(locked, 0o700)


def test_torch_int8_is_one_line(data, capsys):
    rc, out, err = _run(["--data", data["hr"], "--backend", "torch", "--precision", "int8",
                         "--weights", data["weights"]], capsys)
    assert rc == 2 and "no int8 path" in err and "openvino" in err and err.count("\n") == 1


def test_missing_srgan_weights_is_one_line(data, capsys):
    from srgan_fast.checkpoints import MODELS

    if MODELS["srgan"].is_file():
        pytest.skip("the srgan weights are shipped in this checkout")
    rc, out, err = _run(["--data", data["hr"], "--backend", "torch", "--model", "srgan"], capsys)
    assert rc == 2 and "srgan weights are missing" in err and err.count("\n") == 1


def test_help_shows_defaults(capsys):
    from srgan_fast.eval.evaluate import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: auto)" in text and "(default: fp32)" in text


def test_bicubic_texture_ratio_is_below_one_on_a_real_pattern():
    from srgan_fast.eval.evaluate import bicubic
    from srgan_fast.image.imresize import imresize
    from srgan_fast.eval.metrics import texture_ratio

    rng = np.random.default_rng(0)
    hr = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    sr = bicubic(imresize(hr, 0.25))
    assert texture_ratio(sr, hr) < 0.5


def test_quality_table_on_a_tiny_set(data, capsys, tmp_path):
    """python -m srgan_fast.quality: one pair contract (datasets.load_pairs, standard LR required)."""
    import shutil

    from srgan_fast.eval.datasets import load_pairs
    from srgan_fast.image.read import Image, write_image
    from srgan_fast.eval.quality import main

    root = tmp_path / "sr"
    shutil.copytree(data["hr"], root / "Tiny")
    (root / "Tiny_LRx4").mkdir()
    for pair in load_pairs(root / "Tiny", lr="bicubic"):
        write_image(root / "Tiny_LRx4" / f"{pair.name}.png", Image(rgb=__import__("torch").from_numpy(
            pair.lr).permute(2, 0, 1).float() / 255))
    out_json = tmp_path / "q.json"
    rc = main(["--data", str(root), "--sets", "Tiny", "--engines", "torch:fp32", "--weights", data["weights"],
               "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 0 and "| torch | fp32 | fp32 |" in out and "| Tiny NIQE |" in out
    rows = json.loads(out_json.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))["rows"]
    assert rows["torch fp32"]["max_abs_vs_fp32"] < 1e-4 and set(rows) >= {"bicubic", "torch fp32 (reference)"}
    (root / "Tiny_LRx4" / "0.png").unlink()
    assert main(["--data", str(root), "--sets", "Tiny", "--engines", "torch:fp32",
                 "--weights", data["weights"]]) == 2
    assert "missing LR image" in capsys.readouterr().err
