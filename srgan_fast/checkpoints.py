"""Generator weights: our safetensors format, and imports of public SRGAN checkpoints.

``load_generator`` looks at the keys of a file, like spandrel does, to recognise its layout:
- srgan_fast safetensors (metadata ``format=srgan_fast.generator``);
- leftthomas/SRGAN ``netG_*.pth``: ``block1.0``, ``block{2..B+1}.conv1/bn1/prelu/conv2/bn2``,
  ``block{B+2}.0/1``, ``block{B+3}.{0,1}.conv`` + ``.prelu``, ``block{B+3}.2``; output
  ``(tanh(x) + 1) / 2``. ``block{B+2}.1`` is a BatchNorm in the repository's current model.py but
  a PReLU (one slope, no running statistics) in the released ``epochs/netG_epoch_*_100.pth``:
  told apart by its keys and shapes;
- Lornatang/SRGAN-PyTorch ``SRResNet_x4-*.pth.tar`` / ``SRGAN_x4-*.pth.tar`` (``state_dict``
  inside): ``conv1.0`` (or ``conv_block1.0``), ``trunk.N.rcb.{0..4}`` (bias-free convs),
  ``conv2.{0,1}``, ``upsampling.N.upsample_block.{0,2}``, ``conv3``; output clamped to [0, 1].
Block count, PReLU widths, channels and the scale (number of upsampling blocks) are read from the
keys and shapes, and checked: anything else is refused in one line. Pickled files are opened with
``torch.load(weights_only=True)``, which refuses to run code.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

from .digest import file_sha256
from .errors import SrganError
from .model import BODY_KINDS, OUTPUT_MAPPINGS, SCALE, Generator

FORMAT = "srgan_fast.generator"
WEIGHTS_DIR = Path(__file__).parent / "weights"
# The shipped generators, by the name --model takes. srresnet: pixel-MSE training (highest PSNR,
# smooth); srgan: adversarial fine-tuning of it (restores texture). See the model cards beside them.
MODELS = {"srresnet": WEIGHTS_DIR / "srresnet_x4.safetensors",
          "srgan": WEIGHTS_DIR / "srgan_x4.safetensors"}
# srgan by default: more of the photo's texture at -0.16 dB, with no added artefacts or video
# flicker measured (README, "Which model"); srresnet when fidelity to the pixel matters most.
DEFAULT_MODEL = "srgan"
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


# A --detail blend of the two shipped models in the cache (``detail.blend_weights``): the detail
# and the first 16 hex digits of the file's own sha256.
_BLEND = re.compile(r"srgan-detail-(\d\.\d{3})-([0-9a-f]{16})\.safetensors")


def blend_file_name(detail: float, sha256: str) -> str:
    return f"srgan-detail-{detail:.3f}-{sha256[:16]}.safetensors"


def model_name(weights_path) -> str | None:
    """The shipped model name of a weights path: ``srresnet``, ``srgan``, or ``srgan detail A``
    for a blend of the two (None for a user's own file)."""
    p = Path(weights_path).resolve()
    m = _BLEND.fullmatch(p.name)
    if m:
        return f"srgan detail {float(m.group(1)):g}"
    return next((n for n, f in MODELS.items() if f.resolve() == p), None)


def stored_state(g: Generator, dtype=torch.float16) -> dict[str, torch.Tensor]:
    """``g``'s state as a file stores it: BatchNorm statistics stay fp32 (they are few, and
    running_var in fp16 loses the small ones), other floats ``dtype``."""
    return {k: (v.to(dtype) if v.is_floating_point() and "running_" not in k else v).contiguous()
            for k, v in g.state_dict().items()}


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """A hash of tensor names, types, shapes and values (a file's bytes are not stable: the
    safetensors header's key order varies between writes)."""
    import hashlib

    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k].detach().cpu().contiguous()
        h.update(f"{k}:{v.dtype}:{tuple(v.shape)};".encode())
        h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def generator_bytes(g: Generator, dtype=torch.float16, extra: dict | None = None) -> bytes:
    """The safetensors file of ``g``."""
    from safetensors.torch import save

    meta = {"format": FORMAT, "num_blocks": str(g.num_blocks), "channels": str(g.channels),
            "output_mapping": g.output_mapping, "body": g.body}
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    return save(stored_state(g, dtype), metadata=meta)


def save_generator(g: Generator, path, dtype=torch.float16, extra: dict | None = None) -> None:
    from .atomic import write_bytes

    write_bytes(path, generator_bytes(g, dtype, extra))


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
        state, meta = _read_torch(path, head), {}
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


def _read_torch(path: Path, head: bytes = b""):
    import pickle

    if not head.startswith((b"PK\x03\x04", b"\x80")):  # a zip (torch.save) or a pickle
        raise SrganError(f"{path}: not a loadable weights-only checkpoint: neither safetensors nor "
                         "a PyTorch checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's message suggests an unsafe reload: never pass it on
        raise SrganError(f"{path}: not a loadable weights-only checkpoint: it holds objects other than "
                         "tensors, and loading those could run code; export a plain state dict "
                         "or a .safetensors file") from None
    except Exception as e:  # noqa: BLE001 - not a zip or pickle at all
        raise SrganError(f"{path}: not a loadable weights-only checkpoint: neither safetensors nor "
                         f"a PyTorch checkpoint ({e.__class__.__name__})") from None
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
        converted, blocks, mapping, body = _ours(state, meta, path)
    elif "block1.0.weight" in state and "block2.conv1.weight" in state:
        converted, blocks, body = _from_leftthomas(state)
        mapping = "tanh"
    elif any(k.startswith("trunk.") and ".rcb." in k for k in state):
        converted, blocks = _from_lornatang(state)
        mapping, body = "unit", "bn"
    else:
        sample = ", ".join(list(state)[:4])
        raise SrganError(f"{path}: unrecognised generator layout (keys start {sample}); "
                         f"expected srgan_fast, leftthomas/SRGAN or Lornatang/SRGAN-PyTorch weights")
    channels = _check_shapes(converted, blocks, path)
    g = Generator(num_blocks=blocks, channels=channels, output_mapping=mapping, body=body)
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


def _ours(state: dict, meta: dict, path: Path):
    counted = _count(state, r"blocks\.(\d+)\.conv1\.weight")
    try:
        blocks = int(meta.get("num_blocks", counted))
    except ValueError:
        raise SrganError(f"{path}: metadata num_blocks={meta['num_blocks']!r} is not a number") from None
    if blocks != counted:
        raise SrganError(f"{path}: metadata says {blocks} residual blocks but the file holds {counted}")
    mapping = meta.get("output_mapping", "pm1")
    if mapping not in OUTPUT_MAPPINGS:
        raise SrganError(f"{path}: metadata output_mapping={mapping!r} is not one of {', '.join(OUTPUT_MAPPINGS)}")
    body = meta.get("body", "prelu" if "body_prelu.weight" in state else "bn")
    if body not in BODY_KINDS:
        raise SrganError(f"{path}: metadata body={body!r} is not one of {', '.join(BODY_KINDS)}")
    return state, blocks, mapping, body


def _check_shapes(state: dict, blocks: int, path: Path) -> int:
    """The channel count, after checking the shapes that tell layouts and scales apart."""
    head = state.get("head.weight")
    if blocks < 1 or head is None or head.ndim != 4 or tuple(head.shape[1:]) != (3, 9, 9):
        raise SrganError(f"{path}: not an SRResNet generator (no 9x9 RGB head conv, or no residual blocks)")
    c = head.shape[0]
    ups = [state.get(f"upsample.{i}.conv.weight") for i in range(_count(state, r"upsample\.(\d+)\.conv\.weight"))]
    factors = [round((u.shape[0] / c) ** 0.5) if u is not None and u.ndim == 4 else 0 for u in ups]
    if math.prod(factors) != SCALE or any(u.shape[1] != c or f != 2 for u, f in zip(ups, factors)):
        scale = f"an x{math.prod(factors)}" if ups and all(factors) else "an unknown-scale"
        raise SrganError(f"{path}: {scale} generator (upsampling {' x '.join(map(str, factors)) or 'none'}); "
                         f"only x{SCALE} models with two PixelShuffle(2) blocks are supported")
    return c


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
    # The module after the body conv: BatchNorm has running statistics; the released
    # checkpoints' PReLU has a single slope and none.
    bn = f"block{b + 2}.1.running_mean" in state
    body = "bn" if bn else "prelu"
    ups = _count(state, rf"block{b + 3}\.(\d+)\.conv\.weight")
    table = [(r"^block1\.0\.", "head."), (r"^block1\.1\.", "head_prelu.")]
    table += [(rf"^block{i + 2}\.(conv1|bn1|prelu|conv2|bn2)\.", rf"blocks.{i}.\1.") for i in range(b)]
    table += [(rf"^block{b + 2}\.0\.", "body_conv."),
              (rf"^block{b + 2}\.1\.", "body_bn." if bn else "body_prelu.")]
    table += [(rf"^block{b + 3}\.(\d+)\.(conv|prelu)\.", r"upsample.\1.\2."),
              (rf"^block{b + 3}\.{ups}\.", "tail.")]
    return _rename(state, table), b, body


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
