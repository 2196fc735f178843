import pickle

import pytest
import torch

from srgan_fast.checkpoints import load_generator, save_generator
from srgan_fast.errors import SrganError
from srgan_fast.parity import assert_close


def _outputs(g, x):
    with torch.no_grad():
        return g.eval()(x)


def test_safetensors_round_trip(tiny_generator, tmp_path):
    save_generator(tiny_generator, tmp_path / "g.safetensors")
    loaded = load_generator(tmp_path / "g.safetensors")
    assert loaded.num_blocks == 2 and loaded.output_mapping == "pm1"
    x = torch.rand(1, 3, 9, 7)
    assert_close(_outputs(loaded, x), _outputs(tiny_generator, x), "fp16")  # stored in fp16


def _leftthomas_state(g):
    """The key layout of leftthomas/SRGAN's Generator (block1..block8) for our weights."""
    b = g.num_blocks
    names = {"head.": "block1.0.", "head_prelu.": "block1.1.", "body_conv.": f"block{b + 2}.0.",
             "body_bn.": f"block{b + 2}.1.", "tail.": f"block{b + 3}.2."}
    out = {}
    for k, v in g.state_dict().items():
        new = k
        for a, c in names.items():
            if k.startswith(a):
                new = c + k[len(a):]
        if k.startswith("blocks."):
            i, rest = k.split(".", 2)[1:]
            new = f"block{int(i) + 2}.{rest}"
        if k.startswith("upsample."):
            j, layer, rest = k.split(".", 3)[1:]
            new = f"block{b + 3}.{j}.{layer}.{rest}"
        out[new] = v
    return out


def _lornatang_state(g):
    """The key layout of Lornatang/SRGAN-PyTorch's SRResNet (bias-free residual convs)."""
    idx = {"conv1": 0, "bn1": 1, "prelu": 2, "conv2": 3, "bn2": 4}
    out = {}
    for k, v in g.state_dict().items():
        parts = k.split(".")
        if k.startswith("blocks."):
            if parts[2].startswith("conv") and parts[3] == "bias":
                continue
            out[f"trunk.{parts[1]}.rcb.{idx[parts[2]]}.{parts[3]}"] = v
        elif k.startswith("upsample."):
            out[f"upsampling.{parts[1]}.upsample_block.{0 if parts[2] == 'conv' else 2}.{parts[3]}"] = v
        elif k.startswith("body_conv.bias"):
            continue
        else:
            prefix = {"head": "conv1.0", "head_prelu": "conv1.1", "body_conv": "conv2.0", "body_bn": "conv2.1",
                      "tail": "conv3"}[parts[0]]
            out[f"{prefix}.{'.'.join(parts[1:])}"] = v
    return out


@pytest.mark.parametrize("layout,mapping,wrap", [
    ("leftthomas", "tanh", lambda s: s),
    ("lornatang", "unit", lambda s: {"epoch": 10, "best_psnr": 30.1, "state_dict": s}),
])
def test_import_public_checkpoints(tiny_generator, tmp_path, layout, mapping, wrap):
    from srgan_fast.model import Generator

    src = Generator(num_blocks=2, output_mapping=mapping)
    src.load_state_dict(tiny_generator.state_dict())
    if layout == "lornatang":  # its residual and body convs have no bias
        with torch.no_grad():
            for name, m in src.named_modules():
                if isinstance(m, torch.nn.Conv2d) and (name.startswith("blocks.") or name == "body_conv"):
                    m.bias.zero_()
        state = _lornatang_state(src)
    else:
        state = _leftthomas_state(src)
    torch.save(wrap(state), tmp_path / "ckpt.pth")
    loaded = load_generator(tmp_path / "ckpt.pth")
    assert loaded.output_mapping == mapping and loaded.num_blocks == 2
    x = torch.rand(1, 3, 8, 6)
    assert_close(_outputs(loaded, x), _outputs(src, x), "fp32", atol=1e-6, rtol=0)


class _Evil:
    def __reduce__(self):
        return (print, ("pickle code ran",))


def test_refuses_code_in_pickles(tmp_path, capsys):
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"head.weight": _Evil()}, f)
    with pytest.raises(SrganError, match="not a loadable weights-only checkpoint"):
        load_generator(tmp_path / "evil.pth")
    assert "pickle code ran" not in capsys.readouterr().out


@pytest.mark.parametrize("content,match", [
    (b"", "empty"),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":", "corrupt"),
    (b"not a checkpoint at all", "not a loadable"),
])
def test_bad_weight_files(tmp_path, content, match):
    path = tmp_path / ("w.safetensors" if b"{" in content else "w.pth")
    path.write_bytes(content)
    with pytest.raises(SrganError, match=match):
        load_generator(path)


def test_unknown_layout_is_refused(tmp_path):
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(SrganError, match="unrecognised generator layout"):
        load_generator(tmp_path / "other.pth")
    with pytest.raises(SrganError, match="no such weights file"):
        load_generator(tmp_path / "missing.safetensors")


def test_truncated_safetensors(tiny_generator, tmp_path):
    save_generator(tiny_generator, tmp_path / "g.safetensors")
    data = (tmp_path / "g.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(SrganError, match="corrupt"):
        load_generator(tmp_path / "t.safetensors")
