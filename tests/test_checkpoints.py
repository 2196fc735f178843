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


# ---------------------------------------------------------------------------------------------
# Published generator definitions, re-created module by module so their state dicts have the
# real key names and shapes: leftthomas/SRGAN (model.py at HEAD: BatchNorm after the body conv;
# the released epochs/netG_epoch_*_100.pth: PReLU there) and Lornatang/SRGAN-PyTorch (2022
# release: conv_block1/2/3; current: conv1/2/3). Bias-free convs where the originals have them.
# ---------------------------------------------------------------------------------------------
from torch import nn  # noqa: E402


class _LtResidual(nn.Module):
    def __init__(self, c=64):
        super().__init__()
        self.conv1, self.bn1, self.prelu = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.PReLU()
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def forward(self, x):
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


class _LtUpsample(nn.Module):
    def __init__(self, c=64):
        super().__init__()
        self.conv, self.pixel_shuffle, self.prelu = nn.Conv2d(c, 4 * c, 3, padding=1), nn.PixelShuffle(2), nn.PReLU()

    def forward(self, x):
        return self.prelu(self.pixel_shuffle(self.conv(x)))


class LeftthomasGenerator(nn.Module):
    """block1 head, block2..block{B+1} residual, block{B+2} body conv + BN (HEAD) or PReLU
    (released checkpoints), block{B+3} upsampling + tail; output (tanh + 1) / 2."""

    def __init__(self, blocks=5, released=False, upsamples=2):
        super().__init__()
        self.b = blocks
        self.block1 = nn.Sequential(nn.Conv2d(3, 64, 9, padding=4), nn.PReLU())
        for i in range(blocks):
            setattr(self, f"block{i + 2}", _LtResidual())
        setattr(self, f"block{blocks + 2}", nn.Sequential(nn.Conv2d(64, 64, 3, padding=1),
                                                          nn.PReLU() if released else nn.BatchNorm2d(64)))
        tail = [_LtUpsample() for _ in range(upsamples)] + [nn.Conv2d(64, 3, 9, padding=4)]
        setattr(self, f"block{blocks + 3}", nn.Sequential(*tail))

    def forward(self, x):
        first = self.block1(x)
        h = first
        for i in range(self.b):
            h = getattr(self, f"block{i + 2}")(h)
        h = getattr(self, f"block{self.b + 2}")(h)
        return (torch.tanh(getattr(self, f"block{self.b + 3}")(first + h)) + 1) / 2


class _LnResidual(nn.Module):
    def __init__(self, c=64):
        super().__init__()
        self.rcb = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.PReLU(),
                                 nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.rcb(x)


class _LnUpsample(nn.Module):
    def __init__(self, c=64):
        super().__init__()
        self.upsample_block = nn.Sequential(nn.Conv2d(c, 4 * c, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU())

    def forward(self, x):
        return self.upsample_block(x)


class LornatangGenerator(nn.Module):
    """conv(_block)1 head, trunk of rcb blocks, conv(_block)2 bias-free conv + BN, upsampling,
    conv(_block)3 tail; output clamped to [0, 1]."""

    def __init__(self, blocks=3, release="2023"):
        super().__init__()
        self.names = ("conv1", "conv2", "conv3") if release == "2023" else ("conv_block1", "conv_block2", "conv_block3")
        setattr(self, self.names[0], nn.Sequential(nn.Conv2d(3, 64, 9, 1, 4), nn.PReLU()))
        self.trunk = nn.Sequential(*[_LnResidual() for _ in range(blocks)])
        setattr(self, self.names[1], nn.Sequential(nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64)))
        self.upsampling = nn.Sequential(_LnUpsample(), _LnUpsample())
        setattr(self, self.names[2], nn.Conv2d(64, 3, 9, 1, 4))

    def forward(self, x):
        head = getattr(self, self.names[0])(x)
        h = head + getattr(self, self.names[1])(self.trunk(head))
        return getattr(self, self.names[2])(self.upsampling(h)).clamp(0, 1)


def _randomized(module, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
            elif isinstance(m, nn.PReLU):
                m.weight.uniform_(0.05, 0.4)
            elif isinstance(m, nn.Conv2d):
                m.weight.mul_(0.5)  # keep activations in tanh's useful range
    return module.eval()


PUBLISHED = {
    "leftthomas HEAD (block7 BN)": (lambda: LeftthomasGenerator(released=False), lambda s: s, "bn"),
    "leftthomas netG_epoch_4_100 (block7 PReLU)": (lambda: LeftthomasGenerator(released=True), lambda s: s, "prelu"),
    "Lornatang 2022 (conv_block1..3)": (lambda: LornatangGenerator(release="2022"),
                                        lambda s: {"epoch": 3, "state_dict": s}, "bn"),
    "Lornatang current (conv1..3)": (lambda: LornatangGenerator(release="2023"),
                                     lambda s: {"state_dict": s, "best_psnr": 30.0}, "bn"),
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_generators_load_exactly(tmp_path, name):
    make, wrap, body = PUBLISHED[name]
    published = _randomized(make())
    torch.save(wrap(published.state_dict()), tmp_path / "published.pth")
    loaded = load_generator(tmp_path / "published.pth")
    assert loaded.body == body
    x = torch.rand(1, 3, 11, 9)
    with torch.no_grad():
        want = published(x)
        assert_close(loaded(x), want, "fp32", atol=1e-5, rtol=0)
        # BN folding (every engine runs the folded graph) keeps the function.
        from srgan_fast.model import fold_bn
        assert_close(fold_bn(loaded)(x), want, "fp32", atol=1e-5, rtol=0)


def test_released_prelu_body_survives_onnx_export(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    try:
        from srgan_fast.build.export import export_onnx, run_onnx
    except ImportError:
        from srgan_fast.export import export_onnx, run_onnx

    published = _randomized(LeftthomasGenerator(blocks=2, released=True))
    torch.save(published.state_dict(), tmp_path / "netG.pth")
    g = load_generator(tmp_path / "netG.pth")
    onnx_path = export_onnx(g, tmp_path / "g.onnx")
    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        assert_close(run_onnx(onnx_path, [x])[0].reshape(1, 3, 40, 48), published(x), "fp32", atol=1e-4, rtol=0)


def test_safetensors_round_trip_keeps_the_body_kind(tmp_path):
    from srgan_fast.model import Generator

    g = _randomized(Generator(num_blocks=1, body="prelu"))
    save_generator(g, tmp_path / "g.safetensors", dtype=torch.float32)
    loaded = load_generator(tmp_path / "g.safetensors")
    x = torch.rand(1, 3, 6, 6)
    assert loaded.body == "prelu"
    assert_close(_outputs(loaded, x), _outputs(g, x), "fp32", atol=1e-6, rtol=0)


@pytest.mark.parametrize("make,match", [
    (lambda: LeftthomasGenerator(blocks=2, upsamples=1), "x2 generator"),
    (lambda: LeftthomasGenerator(blocks=2, upsamples=3), "x8 generator"),
    # leftthomas/SRGAN's first model.py (an ESPCN-like net: conv1..conv5 + PixelShuffle)
    (lambda: nn.ModuleDict({f"conv{i}": nn.Conv2d(3, 3, 3) for i in range(1, 6)}), "unrecognised generator layout"),
])
def test_other_published_layouts_are_refused(tmp_path, make, match):
    torch.save(make().state_dict(), tmp_path / "other.pth")
    with pytest.raises(SrganError, match=match):
        load_generator(tmp_path / "other.pth")


@pytest.mark.parametrize("meta,match", [({"num_blocks": "many"}, "num_blocks='many' is not a number"),
                                        ({"num_blocks": "7"}, "says 7 residual blocks but the file holds 2"),
                                        ({"output_mapping": "bogus"}, "output_mapping='bogus'"),
                                        ({"body": "bogus"}, "body='bogus'")])
def test_bad_safetensors_metadata(tiny_generator, tmp_path, meta, match):
    save_generator(tiny_generator, tmp_path / "g.safetensors", extra=meta)
    with pytest.raises(SrganError, match=match):
        load_generator(tmp_path / "g.safetensors")


def test_a_text_file_as_weights_gets_our_words(tmp_path):
    (tmp_path / "README.md").write_text("# not weights\n" * 20)
    with pytest.raises(SrganError) as e:
        load_generator(tmp_path / "README.md")
    assert "weights_only=False" not in str(e.value) and "`False`" not in str(e.value)
    assert "neither safetensors nor a PyTorch checkpoint" in str(e.value)
