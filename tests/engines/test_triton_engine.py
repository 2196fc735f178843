"""The triton engine runs the whole generator on the fused kernels and matches the reference.

On CPU the kernels run in Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1): the
images are tiny. The reference is the unfolded generator in eval mode, fp32, so BN folding,
weight packing, the layout changes in head and tail, and the output mapping are all covered.
"""
import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (pip install 'srgan_fast[triton]')")

from srgan_fast.engines import open_engine  # noqa: E402
from srgan_fast.engines.triton_engine import TritonEngine  # noqa: E402
from srgan_fast.errors import SrganError  # noqa: E402
from srgan_fast.model import Generator, receptive_field_radius  # noqa: E402
from srgan_fast.parity import assert_close  # noqa: E402

CUDA = torch.cuda.is_available()


def _spread_tail(g, gain=40.0):
    """Random weights give outputs near 0.5; a louder tail makes the image span (and clip) [0, 1]."""
    with torch.no_grad():
        g.tail.weight.mul_(gain)
    return g


def _lr(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _reference(g, lr):
    with torch.no_grad():
        return g.eval()(lr)


@pytest.mark.parametrize("prec", ["fp32", "fp16"])
def test_tiny_generator_parity(tiny_generator, prec):
    g = _spread_tail(tiny_generator)
    lr = _lr(1, 3, 6, 5)
    expected = _reference(g, lr)
    assert (expected == 0).any() and (expected == 1).any(), "the output clamp must be exercised"
    with TritonEngine(g, precision=prec) as engine:
        sr = engine(lr)
    assert sr.shape == (1, 3, 24, 20) and sr.dtype == torch.float32 and sr.is_contiguous()
    assert engine.precision == prec and engine.name == "triton"
    assert_close(sr, expected, prec)


def test_batch_and_odd_size(tiny_generator):
    g = _spread_tail(tiny_generator)
    lr = _lr(2, 3, 3, 4, seed=1)
    assert_close(TritonEngine(g)(lr), _reference(g, lr), "fp32")


@pytest.mark.parametrize("mapping", ["tanh", "unit"])
def test_other_output_mappings(tiny_generator, mapping):
    g = Generator(num_blocks=2, output_mapping=mapping)
    g.load_state_dict(tiny_generator.state_dict())
    g = _spread_tail(g, gain=10.0 if mapping == "unit" else 40.0)
    lr = _lr(1, 3, 3, 2, seed=2)
    assert_close(TritonEngine(g)(lr), _reference(g, lr), "fp32")


def test_released_leftthomas_body_variant(tiny_generator):
    """PReLU instead of BatchNorm after the body conv (leftthomas/SRGAN's released weights)."""
    g = Generator(num_blocks=2, body="prelu")
    state = {k: v for k, v in tiny_generator.state_dict().items() if not k.startswith("body_bn.")}
    g.load_state_dict({**state, "body_prelu.weight": torch.tensor([-0.7])})
    g = _spread_tail(g)
    lr = _lr(1, 3, 5, 4, seed=3)
    assert_close(TritonEngine(g)(lr), _reference(g, lr), "fp32")


@pytest.mark.slow
def test_full_size_generator_parity():
    """The shipped architecture (16 blocks, per-channel PReLUs) on a 4x3 image."""
    torch.manual_seed(1)
    g = Generator()
    g.head_prelu = torch.nn.PReLU(64)
    for mod in list(g.blocks) + list(g.upsample):
        mod.prelu = torch.nn.PReLU(64)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
            elif isinstance(m, torch.nn.PReLU):
                m.weight.uniform_(0.0, 0.5)
    g = _spread_tail(g)
    lr = _lr(1, 3, 4, 3, seed=3)
    engine = TritonEngine(g)
    assert engine.radius == receptive_field_radius(g) == 40
    assert_close(engine(lr), _reference(g, lr), "fp32")


def test_open_engine_by_name(tiny_generator, tmp_path):
    from srgan_fast.checkpoints import save_generator

    path = tmp_path / "g.safetensors"
    save_generator(tiny_generator, path, dtype=torch.float32)
    lr = _lr(1, 3, 2, 3, seed=4)
    with open_engine("triton", precision="fp32", weights=path) as engine:
        assert isinstance(engine, TritonEngine)
        assert_close(engine(lr), _reference(tiny_generator, lr), "fp32")


def test_precision_and_errors(tiny_generator):
    with pytest.raises(SrganError, match="int8"):
        TritonEngine(tiny_generator, precision="int8")
    with pytest.raises(SrganError, match="unknown precision"):
        TritonEngine(tiny_generator, precision="fp8")
    engine = TritonEngine(tiny_generator, precision="fp16")
    with pytest.raises(ValueError, match="NCHW RGB"):
        engine(torch.zeros(1, 4, 5, 5))
    # fp16 halves every activation: the tiler must see a smaller footprint than fp32's.
    assert engine.bytes_per_lr_pixel < TritonEngine(tiny_generator).bytes_per_lr_pixel


@pytest.mark.skipif(CUDA, reason="checks the CPU interpreter's bf16 fallback")
def test_cpu_bf16_runs_fp32_and_says_so(tiny_generator):
    engine = TritonEngine(tiny_generator, precision="bf16")
    info = engine.info()
    assert (engine.requested_precision, engine.precision) == ("bf16", "fp32")
    assert info["interpreter"] is True and any("bf16" in n for n in info["notes"])
    assert "interpreter" in engine.device


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU: compiled, autotuned kernels")
@pytest.mark.parametrize("prec", ["fp32", "fp16", "bf16"])
def test_gpu_engine_matches_reference(prec):
    torch.manual_seed(0)
    g = _spread_tail(Generator().eval(), gain=10.0)  # modest: 16 blocks of fp16/bf16 rounding feed it
    lr = _lr(2, 3, 48, 80, seed=5).cuda()
    expected = _reference(g.cuda(), lr)
    with TritonEngine(g, precision=prec, device="cuda") as engine:
        sr = engine(lr)
    assert sr.device.type == "cuda"
    assert_close(sr, expected, prec)


@pytest.mark.skipif(CUDA, reason="checks the CPU interpreter being chosen automatically")
def test_fresh_process_picks_the_interpreter(tiny_generator, tmp_path):
    """Opened by name in a process without TRITON_INTERPRET (the CLI case), the engine must set it
    before triton is first imported: triton builds its own library at that import."""
    import os
    import subprocess
    import sys

    from srgan_fast.checkpoints import save_generator

    path = tmp_path / "g.safetensors"
    save_generator(tiny_generator, path, dtype=torch.float32)
    code = ("import torch; from srgan_fast.engines import open_engine\n"
            f"e = open_engine('triton', weights={str(path)!r})\n"
            "y = e(torch.rand(1, 3, 3, 2)); print(e.info()['interpreter'], tuple(y.shape))")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "(1,", "3,", "12,", "8)"]


def test_cpu_interpreter_says_it_is_slow_with_an_estimate(tiny_generator):
    """Issue 13: on a CPU the engine warns up front (estimate from the multiply-adds at ~0.2
    GFLOP/s) and shows per-layer progress for calls that will take a while."""
    from srgan_fast.engines.triton_engine import INTERPRETER_FLOPS, macs_per_lr_pixel

    assert macs_per_lr_pixel(Generator()) == 2_218_176  # DESIGN.md §2
    if CUDA:
        pytest.skip("the warning is for the CPU interpreter")
    said = []
    engine = TritonEngine(tiny_generator, log=said.append)
    assert len(said) == 1 and "interpreter" in said[0] and "64x64 image takes about" in said[0]
    assert engine.estimate_seconds(1, 64, 64) == pytest.approx(
        2 * macs_per_lr_pixel(tiny_generator) * 64 * 64 / INTERPRETER_FLOPS)
    assert engine._layers(torch.zeros(1, 3, 2, 2)) is None  # tiny: no bar
    bar = engine._layers(torch.zeros(1, 3, 256, 256))       # minutes: a bar over every layer
    assert bar is not None and bar.total == 1 + 2 * 2 + 1 + 2 + 1 and "about" in said[-1]
    bar.close()
