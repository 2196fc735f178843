"""``--precision auto``, the commands' default: the decision (precision.choose, with the device
facts monkeypatched, so every kind of machine is decided here), the model's fp16 range check it
rests on (fp16_range), that what it picks stays within the tolerance table of fp32 on real pixels
(per device kind), and that a run says what it chose."""
from pathlib import Path

import pytest
import torch
from conftest import has_module, make_tiny_generator

from srgan_fast import precision
from srgan_fast.checkpoints import MODELS, load_generator
from srgan_fast.parity import MIN_PSNR, compare

DATA = Path(__file__).parent / "data"
BACKENDS = ("torch", "triton", "openvino", "onnxruntime", "tensorrt")


def real_pixels() -> list[torch.Tensor]:
    """The shipped crops and the LR test images: real photographs, odd and even sizes."""
    from srgan_fast.fp16_range import crop_pixels
    from srgan_fast.image.read import read_image

    return crop_pixels() + [read_image(DATA / f"{n}.png").rgb[None] for n in ("butterfly_lr", "comic_lr")]


def overflowing_weights(path, block: int = 1):
    """Tiny weights computing the same image whose ``blocks.<block>.conv1`` (BN folded) reaches
    ~8x fp16's largest value on the shipped crops (as the doctor's test makes them: the block's BN
    scale and shift grow by s, its second conv's weights shrink by s)."""
    from srgan_fast.checkpoints import save_generator
    from srgan_fast.fp16_range import crop_pixels, layer_ranges

    g = make_tiny_generator(seed=1)
    s = 8 * 65504.0 / dict(layer_ranges(g, crop_pixels()))[f"blocks.{block}.conv1"]
    b = g.blocks[block]
    with torch.no_grad():
        b.bn1.weight.mul_(s)
        b.bn1.bias.mul_(s)
        b.conv2.weight.div_(s)
    save_generator(g, path, dtype=torch.float32)
    return path


def cpu(monkeypatch, bf16: bool) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: bf16)
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_bf16"} if bf16 else set()))


# ------------------------------------------------------------------ the decision, per device kind

@pytest.mark.parametrize("bf16", [True, False])
def test_on_a_cpu_auto_is_bf16_where_the_cpu_has_it_else_fp32(monkeypatch, bf16):
    cpu(monkeypatch, bf16)
    for backend in ("openvino", "torch"):
        c = precision.choose(backend, "cpu")
        assert c.precision == ("bf16" if bf16 else "fp32"), (backend, c)
        p = precision.plan(backend, "auto", "cpu")
        assert p.asked == "auto" and p.runs == c.precision and p.note.startswith(c.line)
    # Backends whose CPU path has no fast bf16 run fp32, and say why.
    for backend in ("onnxruntime", "triton"):
        c = precision.choose(backend, "cpu")
        assert c.precision == "fp32" and "fp32" in c.why


@pytest.mark.parametrize("gpu_bf16", [True, False])
@pytest.mark.parametrize("fits", [True, False])
def test_on_a_gpu_auto_is_fp16_when_the_model_fits_else_bf16_else_fp32(monkeypatch, fits, gpu_bf16):
    from srgan_fast import hardware

    monkeypatch.setattr(hardware, "gpu_has_bf16", lambda device="cuda": gpu_bf16)
    asked = []

    def check():
        asked.append(1)
        return fits, "the range check says so"

    for backend in ("torch", "triton", "tensorrt", "onnxruntime"):
        c = precision.choose(backend, "cuda:0", check)
        if fits:
            want = "fp16"
        elif backend in ("tensorrt", "onnxruntime"):   # their graphs have no bf16 convolutions
            want = "fp32"
        else:
            want = "bf16" if gpu_bf16 else "fp32"
        assert c.precision == want, (backend, c)
        assert "the range check says so" in c.line
        plan = precision.plan(backend, c.precision, "cuda:0")   # what is chosen can run there
        assert plan.runs == want
    assert len(asked) == 4   # the check decides every GPU choice
    # On a CPU the fp16 range check is never run (it decides nothing there).
    precision.choose("torch", "cpu", lambda: pytest.fail("the range check ran on a CPU"))


def test_auto_never_picks_int8_and_always_says_why(monkeypatch):
    from srgan_fast import hardware

    for bf16 in (True, False):
        cpu(monkeypatch, bf16)
        monkeypatch.setattr(hardware, "gpu_has_bf16", lambda device="cuda", b=bf16: b)
        for backend in BACKENDS:
            for device in ("cpu", "cuda:0"):
                for fits in (True, False, None):
                    c = precision.choose(backend, device, fits)
                    assert c.precision in ("fp32", "fp16", "bf16") and c.line.startswith("auto: ")
                    assert (precision.EXACT in c.line) == (c.precision != "fp32")


def test_resolve_leaves_every_asked_precision_alone():
    for p in precision.PRECISIONS:
        assert precision.resolve("openvino", p) == (p, None)
    with pytest.raises(precision.SrganError, match="unknown precision 'fp8'"):
        precision.resolve("openvino", "fp8")


def test_the_facade_decides_a_gpu_with_the_models_own_range_check(monkeypatch, tmp_path):
    """engines.auto_precision on (monkeypatched) GPUs: fp16 for the shipped model, not for a
    model one of whose layers passes fp16's range."""
    from srgan_fast import engines, hardware

    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    monkeypatch.setattr(hardware, "gpu_has_bf16", lambda device="cuda": True)
    chosen, choice = engines.auto_precision("tensorrt")
    assert chosen == "fp16" and "fits fp16" in choice.line
    bad = overflowing_weights(tmp_path / "hot.safetensors")
    chosen, choice = engines.auto_precision("torch", "cuda:0", bad)
    assert chosen == "bf16" and "blocks.1.conv1" in choice.line, choice
    chosen, choice = engines.auto_precision("tensorrt", None, bad)
    assert chosen == "fp32" and "blocks.1.conv1" in choice.line


# ------------------------------------------------------------------ the fp16 range check

def test_the_shipped_models_fit_fp16_and_an_overflowing_one_does_not(tmp_path):
    from srgan_fast.fp16_range import fits

    for model, path in MODELS.items():
        if path.is_file():
            ok, why = fits(model=model)
            assert ok and "fits fp16" in why, why
    ok, why = fits(overflowing_weights(tmp_path / "hot.safetensors"))
    assert not ok and why.startswith("blocks.1.conv1 reaches")
    assert fits(make_tiny_generator(seed=1))[0]


# ------------------------------------------------------------------ faithful on real pixels

def shipped():
    path = MODELS["srgan"]
    if not path.is_file():
        pytest.skip(f"shipped weights missing: {path}")
    return path


def reference(g, images):
    from srgan_fast.engines.torch_engine import TorchEngine

    ref = TorchEngine(g, precision="fp32", device="cpu")
    return [ref(x) for x in images]


def assert_faithful(outs, refs, runs):
    for out, ref in zip(outs, refs):
        r = compare(out.cpu(), ref, runs)
        assert r.ok and r.psnr_db >= MIN_PSNR[runs], r.summary()


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_auto_on_this_cpu_stays_within_the_tolerance_table_of_fp32(backend, one_torch_thread):
    """The CPU kind: whatever auto picks here (bf16 with native bf16, else fp32)."""
    if backend == "openvino" and not (has_module("openvino") and has_module("onnx")):
        pytest.skip("needs openvino and onnx (pip install 'srgan_fast[cpu]')")
    from srgan_fast import engines

    weights = shipped()
    images = real_pixels()
    refs = reference(load_generator(weights), images)
    with engines.open_engine(backend, "auto", weights=weights, device="cpu") as engine:
        assert engine.requested_precision == "auto"
        assert engine.precision == precision.plan(backend, "auto", "cpu").runs
        assert engine.precision_choice.startswith("auto: ")
        assert_faithful([engine(x) for x in images], refs, engine.precision)


def fp16_storage(generator):
    """The BN-folded generator with fp16 storage: weights and every layer's output rounded to fp16
    (overflow gives inf, as on a GPU), arithmetic in fp32 as fp16 convolutions accumulate."""
    from srgan_fast.model import ResidualBlock, fold_bn

    g = fold_bn(generator)
    with torch.no_grad():
        for p in g.parameters():
            p.copy_(p.half().float())
    for m in g.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.PReLU, ResidualBlock)):
            m.register_forward_hook(lambda _m, _i, out: out.half().float())
    return g


def test_the_gpu_auto_choice_is_faithful_with_fp16_storage_emulated(one_torch_thread):
    """The GPU kind, checked on this CPU: where the range check passes, auto runs fp16; the shipped
    model with fp16 storage stays within the fp16 tolerance of fp32 on real pixels."""
    from srgan_fast.fp16_range import fits

    weights = shipped()
    ok, _ = fits(weights)
    assert precision.choose("tensorrt", "cuda:0", fits(weights)).precision == ("fp16" if ok else "fp32")
    g = load_generator(weights)
    images = real_pixels()
    refs = reference(g, images)
    emulated = fp16_storage(load_generator(weights))
    with torch.inference_mode():
        assert_faithful([emulated(x.half().float()).clamp(0, 1) for x in images], refs, "fp16")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_on_this_gpu_stays_within_the_tolerance_table_of_fp32():
    from srgan_fast import engines

    weights = shipped()
    images = real_pixels()
    refs = reference(load_generator(weights), images)
    with engines.open_engine("torch", "auto", weights=weights, device="cuda") as engine:
        assert engine.requested_precision == "auto" and engine.precision in ("fp16", "bf16", "fp32")
        assert_faithful([engine(x.cuda()) for x in images], refs, engine.precision)


def test_fp32_still_gives_the_reference_output(tmp_path, capsys, one_torch_thread):
    """``--precision fp32`` is the reference: the CLI's output is the torch fp32 engine's, to the bit."""
    import numpy as np
    from PIL import Image

    from srgan_fast import upscale
    from srgan_fast.engines.torch_engine import TorchEngine
    from srgan_fast.image.read import read_image, to_uint8

    weights = shipped()
    out = tmp_path / "out.png"
    assert upscale.main([str(DATA / "comic_lr.png"), str(out), "--backend", "torch", "--precision", "fp32",
                         "--weights", str(weights), "--no-progress"]) == 0
    assert "engine: torch fp32 on " in capsys.readouterr().err
    with torch.no_grad():
        want = to_uint8(TorchEngine(load_generator(weights), "fp32")(read_image(DATA / "comic_lr.png").rgb[None])[0])
    assert np.array_equal(np.asarray(Image.open(out)), want.permute(1, 2, 0).numpy())


# ------------------------------------------------------------------ the commands say what runs

@pytest.mark.parametrize("bf16", [True, False])
def test_a_default_run_says_what_auto_chose(monkeypatch, tmp_path, capsys, bf16):
    from srgan_fast import upscale
    from srgan_fast.checkpoints import save_generator

    cpu(monkeypatch, bf16)
    weights = tmp_path / "tiny.safetensors"
    save_generator(make_tiny_generator(), weights)
    out = tmp_path / "out.png"
    assert upscale.main([str(DATA / "comic_lr.png"), str(out), "--backend", "torch", "--weights", str(weights),
                         "--no-progress"]) == 0
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if ln.startswith("engine: "))
    want = "bf16" if bf16 else "fp32"
    assert line.startswith(f"engine: torch {want} (auto: "), line
    assert (precision.EXACT in line) == bf16


def test_every_command_defaults_to_auto():
    from srgan_fast import upscale, video
    from srgan_fast.build import cli as build_cli
    from srgan_fast.doctor import cli as doctor_cli
    from srgan_fast.jobs.engine_spec import EngineSpec

    assert precision.DEFAULT_PRECISION == "auto"
    assert video.parse_args(["a.mp4", "b.mp4"]).precision == "auto"
    assert build_cli.parse_args([]).precision == "auto"
    assert "auto" in doctor_cli.parse_args([]).precisions
    args = upscale.parse_args(["a.png", "b.png"])
    assert args.precision is None            # None: auto, or the artifact's with --engine
    args.engine = None
    assert EngineSpec.from_args(args).precision == "auto"
    if has_module("ray") and has_module("fastapi"):
        from srgan_fast.serve import cli as serve_cli
        assert serve_cli.parse_args([]).precision == "auto"
