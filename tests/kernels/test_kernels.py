"""Every fused Triton kernel against its PyTorch reference, over small and odd shapes.

Without CUDA the kernels run in Triton's interpreter (conftest sets TRITON_INTERPRET=1), which
does about 0.2 GFLOP/s: shapes stay tiny. bf16 runs only on a GPU (the interpreter computes bf16
``tl.dot`` wrongly). Errors are judged by the one tolerance table, ``srgan_fast.parity``.
"""
import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (pip install 'srgan_fast[triton]')")

from srgan_fast import kernels as K  # noqa: E402
from srgan_fast.parity import assert_close  # noqa: E402

CUDA = torch.cuda.is_available()
DEV = torch.device("cuda" if CUDA else "cpu")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PRECISIONS = ["fp32", "fp16",
              pytest.param("bf16", marks=[pytest.mark.gpu, pytest.mark.skipif(
                  not CUDA, reason="bf16 needs a GPU: the Triton interpreter computes bf16 dots wrongly")])]


def _rand(*shape, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale


def _layer(cin, cout, k=3, seed=1):
    """OIHW weight scaled to keep activations O(1), and a bias."""
    return _rand(cout, cin, k, k, scale=(cin * k * k) ** -0.5, seed=seed), _rand(cout, scale=0.1, seed=seed + 1)


def _cast(t, prec):
    """The tensor in the kernel's dtype, and the same values in fp32 for the reference."""
    d = t.to(DTYPES[prec])
    return d.to(DEV), d.float()


def _alpha(n, seed=3):
    return torch.full((1,), 0.25) if n == 1 else torch.rand(n, generator=torch.Generator().manual_seed(seed))


# (N, Cin, H, W, Cout): the model's 64 channels, odd spatial sizes, several programs along M
# (the interpreter tile is 128 pixels), and odd channel counts (padded K, masked N, flat K).
SHAPES_3x3 = [(1, 64, 5, 7, 64), (2, 64, 8, 8, 64), (1, 64, 11, 13, 64),
              (1, 24, 4, 5, 40), (2, 5, 3, 4, 16), (1, 96, 3, 3, 24)]


def _ids(v):
    return "x".join(map(str, v)) if isinstance(v, tuple) else str(v)


# One PReLU slope (the public checkpoints' layout) everywhere, one per channel on two shapes.
PRELU_CASES = [(s, 1) for s in SHAPES_3x3] + [(SHAPES_3x3[0], "per_channel"), (SHAPES_3x3[3], "per_channel")]


@pytest.mark.parametrize("prec", PRECISIONS)
@pytest.mark.parametrize("shape, alpha_n", PRELU_CASES, ids=_ids)
def test_conv3x3_prelu(shape, alpha_n, prec):
    n, cin, h, w, cout = shape
    wt, b = _layer(cin, cout)
    wk, wr = _cast(wt, prec)
    x, xr = _cast(_rand(n, h, w, cin), prec)
    alpha = _alpha(1 if alpha_n == 1 else cout)
    layer = K.pack_conv(wk, b, alpha, dtype=DTYPES[prec])
    y = K.conv3x3_prelu(x, layer)
    assert y.shape == (n, h, w, cout) and y.dtype == DTYPES[prec]
    expected = K.conv3x3_prelu_reference(xr, wr, b, alpha)
    assert (expected < 0).any(), "the PReLU's negative side must be exercised"
    assert_close(y, expected, prec)


@pytest.mark.parametrize("prec", PRECISIONS)
@pytest.mark.parametrize("shape, prelu", [(s, False) for s in SHAPES_3x3[:4]] + [(s, True) for s in SHAPES_3x3[:2]],
                         ids=_ids)
def test_conv3x3_add(shape, prelu, prec):
    """conv + skip (residual blocks), and prelu(conv) + skip (leftthomas's released body conv)."""
    n, cin, h, w, cout = shape
    wt, b = _layer(cin, cout)
    wk, wr = _cast(wt, prec)
    x, xr = _cast(_rand(n, h, w, cin), prec)
    res, resr = _cast(_rand(n, h, w, cout, seed=7), prec)
    if prelu:
        alpha = _alpha(1)
        y = K.conv3x3_prelu(x, K.pack_conv(wk, b, alpha, dtype=DTYPES[prec]), residual=res)
        expected = K.conv3x3_prelu_reference(xr, wr, b, alpha, residual=resr)
    else:
        y = K.conv3x3_add(x, K.pack_conv(wk, b, dtype=DTYPES[prec]), residual=res)
        expected = K.conv3x3_add_reference(xr, wr, b, resr)
    assert_close(y, expected, prec)


@pytest.mark.parametrize("prec", PRECISIONS)
@pytest.mark.parametrize("shape", [(1, 64, 5, 7), (2, 64, 4, 3), (1, 16, 3, 5)], ids=_ids)
@pytest.mark.parametrize("alpha_n", [1, "per_channel"])
def test_conv3x3_shuffle_prelu(shape, prec, alpha_n):
    n, c, h, w = shape
    wt, b = _layer(c, 4 * c)
    wk, wr = _cast(wt, prec)
    x, xr = _cast(_rand(n, h, w, c), prec)
    alpha = _alpha(1 if alpha_n == 1 else c)
    layer = K.pack_conv(wk, b, alpha, dtype=DTYPES[prec], shuffle=True)
    y = K.conv3x3_shuffle_prelu(x, layer)
    assert y.shape == (n, 2 * h, 2 * w, c)
    assert_close(y, K.conv3x3_shuffle_prelu_reference(xr, wr, b, alpha), prec)


@pytest.mark.parametrize("prec", PRECISIONS)
@pytest.mark.parametrize("shape", [(1, 6, 5), (2, 7, 9)], ids=_ids)
def test_head_reads_nchw_float32(shape, prec):
    """The head takes the engine's NCHW fp32 input through a permuted view and casts on load."""
    n, h, w = shape
    wt, b = _layer(3, 64, k=9)
    wk, wr = _cast(wt, prec)
    lr = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(5))
    y = K.head_conv_prelu(lr.to(DEV).permute(0, 2, 3, 1), K.pack_conv(wk, b, _alpha(1), dtype=DTYPES[prec]))
    expected = K.head_conv_prelu_reference(lr.to(DTYPES[prec]).float().permute(0, 2, 3, 1), wr, b, _alpha(1))
    assert_close(y, expected, prec)


@pytest.mark.parametrize("prec", PRECISIONS)
@pytest.mark.parametrize("mapping", ["pm1", "tanh", "unit", None])
def test_tail_writes_mapped_nchw(mapping, prec):
    n, c, h, w = 1, 64, 6, 5
    wt, b = _layer(c, 3, k=9)
    wk, wr = _cast(wt * 3, prec)  # raw output spans beyond [-1, 1]: the clamp is exercised
    x, xr = _cast(_rand(n, h, w, c), prec)
    out = torch.full((n, 3, h, w), float("nan"), device=DEV)
    K.tail_conv_map(x, K.pack_conv(wk, b, dtype=DTYPES[prec]), mapping, out=out.permute(0, 2, 3, 1))
    expected = K.tail_conv_map_reference(xr, wr, b, mapping).permute(0, 3, 1, 2)
    if mapping in ("pm1", "unit"):
        assert (expected == 0).any() and (expected == 1).any(), "clamping must be exercised"
    assert_close(out, expected, prec)


def test_epilogue_order_prelu_then_residual_5x5():
    """The general kernel: any odd square kernel, PReLU then residual, on strided (NCHW) tensors."""
    wt, b = _layer(32, 32, k=5)
    x = _rand(1, 32, 6, 7).permute(0, 2, 3, 1)  # NHWC view of an NCHW tensor
    res = _rand(1, 6, 7, 32, seed=9)
    alpha = _alpha(32)
    y = K.conv2d_nhwc(x.to(DEV), K.pack_conv(wt, b, alpha, device=DEV), residual=res.to(DEV))
    assert_close(y, K.conv2d_nhwc_reference(x, wt, b, alpha=alpha, residual=res), "fp32")


def test_pack_conv_rejects_bad_layers():
    w, b = _layer(64, 254)
    with pytest.raises(ValueError, match="divisible by 4"):
        K.pack_conv(w, b, shuffle=True)
    with pytest.raises(ValueError, match="slopes"):
        K.pack_conv(w, b, alpha=torch.ones(3))
    with pytest.raises(ValueError, match="square odd"):
        K.pack_conv(torch.zeros(8, 8, 2, 2))


def test_wrappers_reject_bad_inputs():
    w, b = _layer(64, 64)
    plain = K.pack_conv(w, b, device=DEV)
    with pytest.raises(ValueError, match="64 channels"):
        K.conv2d_nhwc(torch.zeros(1, 4, 4, 32, device=DEV), plain)
    with pytest.raises(ValueError, match="residual has shape"):
        K.conv3x3_add(torch.zeros(1, 4, 4, 64, device=DEV), plain, residual=torch.zeros(1, 4, 5, 64, device=DEV))
    with pytest.raises(ValueError, match="PReLU"):
        K.conv3x3_prelu(torch.zeros(1, 4, 4, 64, device=DEV), plain)


def test_empty_batch_returns_empty():
    w, b = _layer(64, 64)
    y = K.conv3x3_prelu(torch.zeros(0, 4, 4, 64, device=DEV), K.pack_conv(w, b, _alpha(1), device=DEV))
    assert y.shape == (0, 4, 4, 64)


@pytest.mark.skipif(CUDA, reason="checks the interpreter's fixed config")
def test_interpreter_never_autotunes():
    from triton.runtime.autotuner import Autotuner

    from srgan_fast.kernels import conv2d

    assert K.INTERPRET and not isinstance(conv2d._launch, Autotuner)


@pytest.mark.parametrize("cout, dtype, expect_bn", [(64, torch.float16, {64}), (256, torch.float16, {64, 128, 256}),
                                                    (3, torch.float16, {16}), (64, torch.float32, {64})])
def test_autotune_pruning(cout, dtype, expect_bn):
    """The GPU config list, pruned per layer: BLOCK_N fits the channels, the pipeline fits in smem."""
    import triton

    from srgan_fast.kernels import conv2d

    p = K.pack_conv(torch.zeros(cout, 64, 3, 3), dtype=dtype)
    configs = [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
               for bm, bn, w, s in conv2d._GPU_CONFIGS]
    x = torch.empty(1, 270, 480, 64, dtype=dtype, device="meta")
    args, meta = conv2d.kernel_args(x, p, None, None, x)
    kept = conv2d._prune(configs, dict(zip(conv2d._conv_kernel.arg_names, args)), **meta)
    assert {c.kwargs["BLOCK_N"] for c in kept} == expect_bn
    esize = torch.finfo(dtype).bits // 8
    assert all(c.num_stages * (c.kwargs["BLOCK_M"] + c.kwargs["BLOCK_N"]) * p.block_k * esize <= 200 * 1024
               for c in kept)
    tiny = conv2d._prune(configs, dict(zip(conv2d._conv_kernel.arg_names, (*args[:8], 20, 32))), **meta)
    assert tiny and all(c.kwargs["BLOCK_M"] <= 64 for c in tiny)  # a 20-pixel call gets small tiles


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU: autotuned kernels at a realistic size")
@pytest.mark.parametrize("prec", ["fp16", "bf16", "fp32"])
def test_autotuned_kernels_at_larger_size(prec):
    """A 64x96 LR tile through the 3x3, shuffle and tail kernels as compiled and autotuned."""
    x, xr = _cast(_rand(2, 64, 96, 64), prec)
    wt, b = _layer(64, 64)
    wk, wr = _cast(wt, prec)
    assert_close(K.conv3x3_prelu(x, K.pack_conv(wk, b, _alpha(1), dtype=DTYPES[prec])),
                 K.conv3x3_prelu_reference(xr, wr, b, _alpha(1)), prec)
    wt, b = _layer(64, 256)
    wk, wr = _cast(wt, prec)
    assert_close(K.conv3x3_shuffle_prelu(x, K.pack_conv(wk, b, _alpha(64), dtype=DTYPES[prec], shuffle=True)),
                 K.conv3x3_shuffle_prelu_reference(xr, wr, b, _alpha(64)), prec)
    wt, b = _layer(64, 3, k=9)
    wk, wr = _cast(wt, prec)
    assert_close(K.tail_conv_map(x, K.pack_conv(wk, b, dtype=DTYPES[prec])),
                 K.tail_conv_map_reference(xr, wr, b), prec)


@pytest.mark.slow
def test_kernels_compile_for_hopper_with_tensor_cores():
    """Without a GPU, compile every layer kind for sm_90 (triton's own ptxas) in a fresh process.

    The interpreter proves the arithmetic; this proves the GPU build: each kernel compiles, uses
    wgmma, and (except the 3-channel head) feeds it with 16-byte async copies.
    """
    import json
    import os
    import subprocess
    import sys

    from triton.backends import backends

    if "nvidia" not in backends:
        pytest.skip("triton has no NVIDIA backend here")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-m", "srgan_fast.kernels.aot_check", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    rows = json.loads(proc.stdout)
    assert len(rows) == 6
    for r in rows:
        assert r["tensor_cores"] == "wgmma", r
        assert 16 in r["cp_async_bytes"], r
        assert r["shared_bytes"] <= 200 * 1024, r
