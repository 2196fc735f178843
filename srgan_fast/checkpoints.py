"""Generator weights: our safetensors format, and imports of public SRGAN checkpoints.

``load_generator`` looks at the keys of a file, like spandrel does, to recognise its layout:
- srgan_fast safetensors (metadata ``format=srgan_fast.generator``);
- leftthomas/SRGAN ``netG_*.pth``: ``block1.0``, ``block{2..B+1}.conv1/bn1/prelu/conv2/bn2``,
  ``block{B+2}.0/1``, ``block{B+3}.{0,1}.conv`` + ``.prelu``, ``block{B+3}.2``; output
  ``(tanh(x) + 1) / 2``;
- Lornatang/SRGAN-PyTorch ``SRResNet_x4-*.pth.tar`` / ``SRGAN_x4-*.pth.tar`` (``state_dict``
  inside): ``conv1.0`` (or ``conv_block1.0``), ``trunk.N.rcb.{0..4}`` (bias-free convs),
  ``conv2.{0,1}``, ``upsampling.N.upsample_block.{0,2}``, ``conv3``; output clamped to [0, 1].
Block count and PReLU widths are read from the keys. Pickled files are opened with
``torch.load(weights_only=True)``, which refuses to run code; anything else is refused.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import torch

from .errors import SrganError
from .model import Generator

FORMAT = "srgan_fast.generator"
WEIGHTS_DIR = Path(__file__).parent / "weights"
# The shipped generators, by the name --model takes. srresnet: pixel-MSE training (highest PSNR,
# smooth); srgan: adversarial fine-tuning of it (restores texture). See the model cards beside them.
MODELS = {"srresnet": WEIGHTS_DIR / "srresnet_x4.safetensors",
          "srgan": WEIGHTS_DIR / "srgan_x4.safetensors"}
DEFAULT_MODEL = "srresnet"
PACKAGE_WEIGHTS = MODELS[DEFAULT_MODEL]


def model_weights(model: str | None = None, weights=None) -> Path:
    """The weights file for ``--model NAME`` / ``--weights FILE`` (a file given wins over a name;
    neither: the default model). The one place a model name becomes a path."""
    if weights is not None:
        return Path(weights)
    name = model or DEFAULT_MODEL
    if name not in MODELS:
        raise SrganError(f"unknown model {name!r} (choose from {', '.join(MODELS)})")
    path = MODELS[name]
    if not path.is_file():
        raise SrganError(f"the shipped {name} weights are missing ({path}); reinstall, or pass --weights")
    return path


def model_name(weights_path) -> str | None:
    """The shipped model name of a weights path (None for a user's own file)."""
    p = Path(weights_path).resolve()
    return next((n for n, f in MODELS.items() if f.resolve() == p), None)


def save_generator(g: Generator, path, dtype=torch.float16, extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    from .atomic import atomic_output

    meta = {"format": FORMAT, "num_blocks": str(g.num_blocks), "channels": str(g.channels),
            "output_mapping": g.output_mapping}
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    # BatchNorm statistics stay fp32: they are few, and running_var in fp16 loses the small ones.
    state = {k: (v.to(dtype) if v.is_floating_point() and "running_" not in k else v).contiguous()
             for k, v in g.state_dict().items()}
    with atomic_output(path) as tmp:
        save_file(state, str(tmp), metadata=meta)


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_generator(path=None) -> Generator:
    """Load a generator (eval mode, float32) from our safetensors or a public checkpoint."""
    path = Path(path) if path is not None else PACKAGE_WEIGHTS
    if not path.is_file():
        raise SrganError(f"{path}: no such weights file")
    if path.stat().st_size == 0:
        raise SrganError(f"{path}: empty weights file")
    with open(path, "rb") as f:
        head = f.read(8)
    if path.suffix == ".safetensors" or _looks_like_safetensors(path, head):
        state, meta = _read_safetensors(path)
    else:
        state, meta = _read_torch(path), {}
    return _build(state, meta, path)


def _looks_like_safetensors(path: Path, head: bytes) -> bool:
    if len(head) < 8:
        return False
    n = int.from_bytes(head, "little")
    return 2 <= n < min(path.stat().st_size, 100_000_000)


def _read_safetensors(path: Path):
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - a corrupt file of any kind gets one line
        raise SrganError(f"{path}: corrupt or unreadable safetensors file ({e})") from None
    return state, meta


def _read_torch(path: Path):
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise SrganError(f"{path}: not a loadable weights-only checkpoint ({first[:200]})") from None
    # Trainers wrap the state dict in various ways.
    for key in ("state_dict", "params_ema", "params", "model", "generator", "netG"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SrganError(f"{path}: does not contain a state dict of tensors")
    return {re.sub(r"^(module\.|_orig_mod\.)", "", k): v for k, v in obj.items()}


def _build(state: dict, meta: dict, path: Path) -> Generator:
    if meta.get("format") == FORMAT or "head.weight" in state:
        blocks = int(meta.get("num_blocks", _count(state, r"blocks\.(\d+)\.conv1\.weight")))
        mapping = meta.get("output_mapping", "pm1")
        converted = state
    elif "block1.0.weight" in state:
        converted, blocks = _from_leftthomas(state)
        mapping = "tanh"
    elif any(k.startswith("trunk.") and ".rcb." in k for k in state):
        converted, blocks = _from_lornatang(state)
        mapping = "unit"
    else:
        sample = ", ".join(list(state)[:4])
        raise SrganError(f"{path}: unrecognised generator layout (keys start {sample}); "
                         f"expected srgan_fast, leftthomas/SRGAN or Lornatang/SRGAN-PyTorch weights")
    if blocks < 1:
        raise SrganError(f"{path}: no residual blocks found")
    channels = converted["head.weight"].shape[0]
    g = Generator(num_blocks=blocks, channels=channels, output_mapping=mapping)
    _fit_prelus(g, converted)
    for name, module in g.named_modules():  # bias-free convs in the source: a zero bias is the same
        if isinstance(module, torch.nn.Conv2d) and f"{name}.weight" in converted:
            converted.setdefault(f"{name}.bias", torch.zeros(module.out_channels))
    try:
        g.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in converted.items()})
    except RuntimeError as e:
        raise SrganError(f"{path}: weights do not fit the generator ({str(e).splitlines()[-1].strip()[:200]})") from None
    return g.eval()


def _count(state, pattern) -> int:
    idx = {int(m.group(1)) for k in state if (m := re.fullmatch(pattern, k))}
    return len(idx)


def _fit_prelus(g: Generator, state: dict) -> None:
    """Give each PReLU as many parameters as the checkpoint has (1 or per-channel)."""
    for name, module in g.named_modules():
        if isinstance(module, torch.nn.PReLU):
            w = state.get(f"{name}.weight")
            if w is not None and w.numel() != module.weight.numel():
                module.weight = torch.nn.Parameter(torch.empty(w.numel()))


def _rename(state: dict, table: list[tuple[str, str]]) -> dict:
    out = {}
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            continue
        for pattern, repl in table:
            new, n = re.subn(pattern, repl, k)
            if n:
                out[new] = v
                break
    return out


def _from_leftthomas(state):
    b = _count(state, r"block(\d+)\.conv1\.weight")
    table = [(r"^block1\.0\.", "head."), (r"^block1\.1\.", "head_prelu.")]
    table += [(rf"^block{i + 2}\.(conv1|bn1|prelu|conv2|bn2)\.", rf"blocks.{i}.\1.") for i in range(b)]
    table += [(rf"^block{b + 2}\.0\.", "body_conv."), (rf"^block{b + 2}\.1\.", "body_bn.")]
    table += [(rf"^block{b + 3}\.([01])\.(conv|prelu)\.", r"upsample.\1.\2."),
              (rf"^block{b + 3}\.2\.", "tail.")]
    return _rename(state, table), b


def _from_lornatang(state):
    # Two releases: conv1/conv2/conv3 (current) and conv_block1/2/3 (2022); upsampling blocks are
    # ``upsampling.N.upsample_block.{0,2}``; its residual and body convs have no bias.
    b = _count(state, r"trunk\.(\d+)\.rcb\.0\.weight")
    table = [(r"^conv(?:_block)?1\.0\.", "head."), (r"^conv(?:_block)?1\.1\.", "head_prelu.")]
    table += [(rf"^trunk\.(\d+)\.rcb\.{i}\.", rf"blocks.\1.{name}.")
              for i, name in enumerate(["conv1", "bn1", "prelu", "conv2", "bn2"])]
    table += [(r"^conv(?:_block)?2\.0\.", "body_conv."), (r"^conv(?:_block)?2\.1\.", "body_bn."),
              (r"^upsampling\.(\d+)\.(?:upsample_block\.)?0\.", r"upsample.\1.conv."),
              (r"^upsampling\.(\d+)\.(?:upsample_block\.)?2\.", r"upsample.\1.prelu."),
              (r"^conv(?:_block)?3\.(?:0\.)?", "tail.")]
    return _rename(state, table), b


def describe(path) -> dict:
    """Short provenance of a weights file for sidecars and model cards."""
    path = Path(path) if path is not None else PACKAGE_WEIGHTS
    info = {"path": str(path), "sha256": file_sha256(path)}
    if path.suffix == ".safetensors":
        try:
            info["metadata"] = _read_safetensors(path)[1]
        except SrganError:
            pass
    return json.loads(json.dumps(info))
