"""Network interpolation of two generators (the recipe of the shipped SRGAN weights)."""
import pytest
import torch

from srgan_fast.checkpoints import load_generator, save_generator
from srgan_fast.errors import SrganError
from srgan_fast.train.interpolate import interpolate, main
from srgan_fast.model import Generator


def _pair():
    torch.manual_seed(0)
    a, b = Generator(num_blocks=1).eval(), Generator(num_blocks=1).eval()
    return a, b


def test_endpoints_and_midpoint_are_exact_weight_blends():
    a, b = _pair()
    for alpha, want in ((0.0, a), (1.0, b)):
        got = interpolate(a, b, alpha).state_dict()
        assert all(torch.equal(got[k], v) for k, v in want.state_dict().items())
    mid = interpolate(a, b, 0.25).state_dict()
    k = "head.0.weight" if "head.0.weight" in mid else next(iter(mid))
    assert torch.allclose(mid[k], 0.75 * a.state_dict()[k] + 0.25 * b.state_dict()[k])


def test_mismatched_architectures_and_bad_alpha_are_refused():
    a, _ = _pair()
    with pytest.raises(SrganError, match="architecture"):
        interpolate(a, Generator(num_blocks=2), 0.5)
    with pytest.raises(SrganError, match="alpha"):
        interpolate(a, a, 1.5)


def test_cli_writes_a_loadable_generator_and_never_overwrites(tmp_path, capsys):
    a, b = _pair()
    save_generator(a, tmp_path / "a.safetensors")
    save_generator(b, tmp_path / "b.safetensors")
    out = tmp_path / "mix.safetensors"
    args = [str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "--alpha", "0.3", "--out", str(out)]
    assert main(args) == 0
    assert load_generator(out).num_blocks == 1
    assert main(args) == 2 and "exists" in capsys.readouterr().err
