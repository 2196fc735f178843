"""--detail: the shipped SRResNet (0) and SRGAN (1) blended at load time, through every command."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srgan_fast import detail, upscale
from srgan_fast.checkpoints import MODELS, load_generator, model_name
from srgan_fast.errors import SrganError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SRGAN_FAST_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_endpoints_are_the_shipped_files_and_nothing_is_written(cache):
    assert detail.resolve_weights(detail=0) == MODELS["srresnet"]
    assert detail.resolve_weights(detail=1) == MODELS["srgan"]
    assert detail.resolve_weights("srresnet") == MODELS["srresnet"]
    default = detail.resolve_weights()
    assert default == detail.blend_weights(detail.DEFAULT_DETAIL)
    if detail.DEFAULT_DETAIL in (0.0, 1.0):
        assert not cache.exists()


def test_a_blend_is_the_weight_interpolation_made_once(cache):
    path = detail.resolve_weights("srgan", None, 0.3)
    assert path.parent == cache / "blends" and model_name(path) == "srgan detail 0.3"
    base, adv = load_generator(MODELS["srresnet"]), load_generator(MODELS["srgan"])
    want = detail.interpolate(base, adv, 0.3).state_dict()
    got = load_generator(path).state_dict()
    for k, v in want.items():
        tol = 0 if not v.is_floating_point() or "running_" in k else 2e-3 * float(v.abs().max()) + 1e-6
        assert torch.allclose(got[k].float(), v.float(), atol=tol, rtol=0), k   # stored fp16
    mtime = path.stat().st_mtime_ns
    assert detail.resolve_weights(detail=0.3) == path and path.stat().st_mtime_ns == mtime  # reused
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]          # no temporaries


def test_a_damaged_blend_is_rewritten_not_used(cache):
    path = detail.resolve_weights(detail=0.6)
    good = path.read_bytes()
    data = bytearray(good)
    data[-100] ^= 0xFF                      # one flipped byte in the tensor data
    path.write_bytes(bytes(data))
    assert detail.resolve_weights(detail=0.6) == path
    assert load_generator(path).state_dict().keys() == load_generator(MODELS["srgan"]).state_dict().keys()
    assert detail._stored_sha256(path)[:16] == path.stem.rsplit("-", 1)[1]   # intact again


@pytest.mark.parametrize("value", ["nan", "inf", "-0.1", "1.01", "abc", ""])
def test_bad_values_are_refused(value):
    import argparse
    with pytest.raises(argparse.ArgumentTypeError, match="number in"):
        detail.parse_detail(value)


def test_conflicts_are_one_line():
    with pytest.raises(SrganError, match="cannot be combined with --weights"):
        detail.resolve_weights(None, "x.safetensors", 0.5)
    with pytest.raises(SrganError, match="applies to --model srgan"):
        detail.resolve_weights("srresnet", None, 0.5)


def _run(argv, capsys):
    code = upscale.main([*map(str, argv), "--backend", "torch", "--no-progress"])
    return code, capsys.readouterr().err


def test_upscale_detail_0_is_the_srresnet_and_1_the_srgan(tmp_path, cache, capsys, one_torch_thread):
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 14, 3), dtype=np.uint8)).save(src)
    outs = {}
    for name, flags in {"d0": ["--detail", "0"], "srresnet": ["--model", "srresnet"],
                        "d1": ["--detail", "1"], "srgan": ["--model", "srgan"], "d05": ["--detail", "0.5"]}.items():
        code, err = _run([src, tmp_path / f"{name}.png", *flags], capsys)
        assert code == 0, err
        outs[name] = np.asarray(Image.open(tmp_path / f"{name}.png"))
    assert np.array_equal(outs["d0"], outs["srresnet"]) and np.array_equal(outs["d1"], outs["srgan"])
    assert not np.array_equal(outs["d05"], outs["d0"]) and not np.array_equal(outs["d05"], outs["d1"])
    # between the two endpoints, pixel by pixel, for most pixels (a blend of weights is not a
    # blend of outputs, but at 0.5 it lands between them nearly everywhere)
    lo = np.minimum(outs["d0"], outs["d1"]).astype(int) - 2
    hi = np.maximum(outs["d0"], outs["d1"]).astype(int) + 2
    inside = (outs["d05"] >= lo) & (outs["d05"] <= hi)
    assert inside.mean() > 0.9


def test_upscale_refuses_detail_with_weights_srresnet_or_an_engine(tmp_path, cache, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src)
    for flags, says in ((["--model", "srresnet", "--detail", "0.5"], "applies to --model srgan"),
                        (["--weights", str(MODELS["srgan"]), "--detail", "0.5"], "--weights"),
                        (["--engine", str(tmp_path / "x.onnx"), "--detail", "0.5"], "--detail cannot be combined")):
        code, err = _run([src, tmp_path / "out.png", *flags], capsys)
        assert code != 0 and err.strip().splitlines()[-1].startswith("error:") and says in err, err
        assert not (tmp_path / "out.png").exists()


def test_build_keys_and_records_the_detail(cache):
    pytest.importorskip("onnxruntime")
    from srgan_fast.build.spec import make_spec

    specs = {a: make_spec(precision="fp32", target="onnxruntime", detail=a) for a in (0.0, 0.5, 1.0)}
    assert len({s.key() for s in specs.values()}) == 3
    assert specs[0.5].model.name == "srgan detail 0.5" and specs[1.0].model.name == "srgan"
    assert specs[0.0].model.name == "srresnet"
    assert make_spec(precision="fp32", target="onnxruntime").key() == \
        make_spec(precision="fp32", target="onnxruntime", detail=detail.DEFAULT_DETAIL).key()


def test_jobs_carry_the_detail_to_workers_on_other_machines(cache, tmp_path, monkeypatch):
    from argparse import Namespace

    from srgan_fast.jobs.engine_spec import EngineSpec

    spec = EngineSpec.from_args(Namespace(backend="torch", precision="fp32", model=None, weights=None,
                                          detail=0.4, engine=None))
    assert spec.detail == 0.4 and Path(spec.weights).is_file() and spec.identity()["model"] == "srgan detail 0.4"
    # a worker whose cache lacks the blend (another node) makes the same weights again
    Path(spec.weights).unlink()
    monkeypatch.setenv("SRGAN_FAST_CACHE", str(tmp_path / "other_node"))
    here = Path(spec.weights_here())
    assert here.parent == tmp_path / "other_node" / "blends" and here.name == Path(spec.weights).name
    assert os.path.getsize(here) > 0
