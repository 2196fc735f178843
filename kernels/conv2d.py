"""One implicit-GEMM convolution kernel over NHWC with a fused epilogue; every op in this package uses it.

GEMM view: M = output pixels (N*H*W, flattened), N = output channels, K = taps x input channels.
The K loop walks the taps and, inside each, the input-channel blocks; for each it gathers a
[BLOCK_M, BLOCK_K] tile of input pixels shifted by the tap (zero outside the image: "same"
padding) and multiplies it with a [BLOCK_K, BLOCK_N] tile of the packed weight. With fewer than
16 input channels (the RGB head) K is instead the flattened (tap, channel) pairs, padded once to
a multiple of BLOCK_K, rather than padding each tap's channels up to what ``tl.dot`` needs.
Accumulation is fp32 whatever the input dtype; fp32 inputs use IEEE dots (never TF32).

Epilogue, in this order: + bias (the folded BatchNorm lives here), PReLU, + residual, output
mapping to [0, 1] (tail only), then the store. With ``shuffle`` the conv's output channel
``c*4 + i*2 + j`` is stored straight at pixel ``(2h+i, 2w+j)``, channel ``c`` (PixelShuffle(2)),
so the 4x-wide tensor is never written. Every tensor is addressed through its strides, so the
head can read the NCHW input and the tail can write the NCHW output directly: the layout change
happens inside those two kernels and nowhere else.

On a GPU the block sizes are autotuned per shape; under ``TRITON_INTERPRET=1`` (CPU tests) one
small fixed config runs and the autotuner is never built (decided once, at import).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import triton
import triton.language as tl


def _interpreting() -> bool:
    knobs = getattr(triton, "knobs", None)
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


# Fixed at import: triton.jit picks interpreter or compiler when the kernel is decorated.
INTERPRET = _interpreting()
# triton decorates its own library (tl.cdiv, ...) when it is first imported: a TRITON_INTERPRET
# set or unset after that leaves a mix that fails at the first launch. Say so now instead.
if INTERPRET != (type(tl.cdiv).__name__ == "InterpretedFunction"):
    raise ImportError("TRITON_INTERPRET changed after triton was imported: set it (or unset it) "
                      "before the first import of triton")

OUT_MAPS = {None: 0, "pm1": 1, "tanh": 2, "unit": 3}


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _cout_pad(cout: int) -> int:
    # Power of two up to 256 so every autotuned BLOCK_N divides it; the weight needs no N mask.
    return max(16, _next_pow2(cout)) if cout <= 256 else _round_up(cout, 256)


@dataclass(frozen=True)
class PackedConv:
    """A conv layer in the layout the kernel reads (built once by ``pack_conv``).

    ``weight`` is a [k_rows, cout_pad] matrix: row ``tap * k_ch + ci`` holds the weights of input
    channel ``ci`` at tap ``(tap // ksize, tap % ksize)``; padded rows and columns are zero.
    """

    weight: torch.Tensor          # [k_rows, cout_pad], compute dtype
    bias: torch.Tensor            # [cout_pad] fp32 (conv bias with BatchNorm folded in)
    alpha: torch.Tensor | None    # [cout_pad] fp32 PReLU slopes per stored channel, or None
    ksize: int
    cin: int
    cout: int                     # conv output channels (before any pixel shuffle)
    k_ch: int                     # channels per tap in the K dimension (cin, or cin padded)
    flat_k: bool                  # K = taps*cin flattened (few input channels: the 3-channel head)
    block_k: int
    shuffle: bool                 # output channels permuted sub-pixel-major, stored shuffled

    @property
    def dtype(self) -> torch.dtype:
        return self.weight.dtype

    @property
    def out_channels(self) -> int:
        """Channels of the stored output (cout / 4 after the pixel shuffle)."""
        return self.cout // 4 if self.shuffle else self.cout


@torch.no_grad()
def pack_conv(weight: torch.Tensor, bias: torch.Tensor | None = None, alpha: torch.Tensor | None = None,
              dtype: torch.dtype = torch.float32, shuffle: bool = False, device=None) -> PackedConv:
    """Pack an OIHW conv weight (+ bias, + PReLU slopes) for the kernel.

    ``alpha`` is the PReLU weight of the layer after the conv: 1 value or one per channel of the
    stored output (after the shuffle when ``shuffle``). With ``shuffle`` the output channels are
    reordered from PixelShuffle's ``c*4 + q`` to ``q*C + c`` (q = sub-pixel), so one block of
    BLOCK_N channels is one sub-pixel's contiguous channel run: coalesced stores.
    """
    device = weight.device if device is None else torch.device(device)
    cout, cin, kh, kw = weight.shape
    if kh != kw or kh % 2 == 0:
        raise ValueError(f"only square odd kernels are supported, got {kh}x{kw}")
    w = weight.detach().float()
    b = torch.zeros(cout) if bias is None else bias.detach().float().cpu()
    w = w.cpu()
    store_ch = cout
    if shuffle:
        if cout % 4:
            raise ValueError(f"pixel shuffle needs output channels divisible by 4, got {cout}")
        store_ch = cout // 4
        w = w.reshape(store_ch, 4, cin, kh, kw).transpose(0, 1).reshape(cout, cin, kh, kw)
        b = b.reshape(store_ch, 4).t().reshape(cout)
    cout_pad = _cout_pad(cout)
    taps = kh * kw
    flat_k = cin < 16
    if flat_k:
        # Tiny cin (the RGB head): flatten (tap, ci) into K and pad the total, not each tap.
        k_ch, block_k = cin, 32
        rows = _round_up(taps * cin, block_k)
        wk = torch.zeros(rows, cout_pad)
        wk[: taps * cin, :cout] = w.permute(2, 3, 1, 0).reshape(taps * cin, cout)
    else:
        k_ch = _next_pow2(cin) if cin <= 64 else _round_up(cin, 64)
        block_k = min(k_ch, 64)
        wk = torch.zeros(kh, kw, k_ch, cout_pad)
        wk[:, :, :cin, :cout] = w.permute(2, 3, 1, 0)
        wk = wk.reshape(taps * k_ch, cout_pad)
    bp = torch.zeros(cout_pad)
    bp[:cout] = b
    ap = None
    if alpha is not None:
        a = alpha.detach().float().cpu().reshape(-1)
        if a.numel() == 1:
            a = a.expand(store_ch)
        elif a.numel() != store_ch:
            raise ValueError(f"PReLU has {a.numel()} slopes for {store_ch} channels")
        ap = torch.zeros(cout_pad)
        ap[:cout] = a.repeat(4) if shuffle else a  # one slope per stored (sub-pixel, channel)
        ap = ap.to(device)
    return PackedConv(weight=wk.to(device, dtype).contiguous(), bias=bp.to(device), alpha=ap,
                      ksize=kh, cin=cin, cout=cout, k_ch=k_ch, flat_k=flat_k, block_k=block_k,
                      shuffle=shuffle)


@triton.jit
def _mma(a, b, acc, IEEE: tl.constexpr):
    if IEEE:
        return tl.dot(a, b, acc, input_precision="ieee")  # fp32 must not silently run as tf32
    return tl.dot(a, b, acc)


@triton.jit
def _conv_kernel(
    x_ptr, w_ptr, b_ptr, alpha_ptr, res_ptr, out_ptr,
    H, W, M, M_BUCKET,  # M_BUCKET (next power of two of M) is only the autotune key
    sxn, sxh, sxw, sxc,
    srn, srh, srw, src,
    son, soh, sow, soc,
    CIN: tl.constexpr, COUT: tl.constexpr, COUT_PAD: tl.constexpr,
    KSIZE: tl.constexpr, K_CH: tl.constexpr, K_ROWS: tl.constexpr, FLAT_K: tl.constexpr,
    HAS_PRELU: tl.constexpr, HAS_RES: tl.constexpr, SHUFFLE: tl.constexpr, OUT_MAP: tl.constexpr,
    IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # N blocks vary fastest: programs sharing an input tile run together and hit it in L2.
    pid = tl.program_id(0)
    num_n = tl.cdiv(COUT, BLOCK_N)
    pid_m = pid // num_n
    pid_n = pid % num_n
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_ok = offs_m < M
    img = offs_m // (H * W)
    rem = offs_m - img * (H * W)
    oh = rem // W
    ow = rem - oh * W
    img64 = img.to(tl.int64)  # batch offsets can pass 2**31 elements
    x_img = img64 * sxn
    PAD: tl.constexpr = KSIZE // 2

    w_cols = w_ptr + offs_n[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if FLAT_K:
        # Few input channels (the RGB head): K is the (tap, ci) pairs flattened, and each K
        # element computes its own shift.
        for k0 in range(0, K_ROWS, BLOCK_K):
            kk = k0 + offs_k
            tap = kk // K_CH
            ci = kk - tap * K_CH
            ih = oh[:, None] + (tap // KSIZE - PAD)[None, :]
            iw = ow[:, None] + (tap % KSIZE - PAD)[None, :]
            ok = (m_ok[:, None] & (tap < KSIZE * KSIZE)[None, :]
                  & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W))
            ptrs = (x_ptr + x_img[:, None] + ih.to(tl.int64) * sxh + iw.to(tl.int64) * sxw
                    + (ci * sxc)[None, :])
            a = tl.load(ptrs, mask=ok, other=0.0).to(w_ptr.dtype.element_ty)
            b = tl.load(w_cols + kk[:, None] * COUT_PAD)
            acc = _mma(a, b, acc, IEEE)
    else:
        # One shift per tap (a row vector), then the tap's channel blocks; the tap loop is the
        # one the compiler pipelines (one block per tap at 64 channels).
        for tap in range(KSIZE * KSIZE):
            ih = oh + (tap // KSIZE - PAD)
            iw = ow + (tap % KSIZE - PAD)
            row_ok = m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            x_rows = x_ptr + (x_img + ih.to(tl.int64) * sxh + iw.to(tl.int64) * sxw)[:, None]
            for c0 in tl.static_range(0, K_CH, BLOCK_K):
                ci = c0 + offs_k
                ok = row_ok[:, None]
                if CIN < K_CH:
                    ok = ok & (ci < CIN)[None, :]
                a = tl.load(x_rows + (ci * sxc)[None, :], mask=ok, other=0.0).to(w_ptr.dtype.element_ty)
                b = tl.load(w_cols + (tap * K_CH + ci)[:, None] * COUT_PAD)
                acc = _mma(a, b, acc, IEEE)

    acc += tl.load(b_ptr + offs_n)[None, :]
    if HAS_PRELU:
        alpha = tl.load(alpha_ptr + offs_n)
        acc = tl.where(acc >= 0, acc, acc * alpha[None, :])
    mask = m_ok[:, None] & (offs_n < COUT)[None, :]
    if HAS_RES:
        r_off = ((img64 * srn + oh.to(tl.int64) * srh + ow.to(tl.int64) * srw)[:, None]
                 + (offs_n * src)[None, :])
        acc += tl.load(res_ptr + r_off, mask=mask, other=0.0).to(tl.float32)
    if OUT_MAP == 1:    # pm1: raw in [-1, 1]
        acc = (acc + 1.0) * 0.5
    elif OUT_MAP == 2:  # tanh: (tanh(x) + 1) / 2 == sigmoid(2x)
        acc = tl.sigmoid(2.0 * acc)
    if OUT_MAP != 0:
        acc = tl.minimum(tl.maximum(acc, 0.0), 1.0)
    if SHUFFLE:
        C4: tl.constexpr = COUT // 4
        q = offs_n // C4
        c = offs_n - q * C4
        oh2 = (2 * oh)[:, None] + (q // 2)[None, :]
        ow2 = (2 * ow)[:, None] + (q % 2)[None, :]
        o_off = (img64 * son)[:, None] + oh2.to(tl.int64) * soh + ow2.to(tl.int64) * sow + (c * soc)[None, :]
    else:
        o_off = ((img64 * son + oh.to(tl.int64) * soh + ow.to(tl.int64) * sow)[:, None]
                 + (offs_n * soc)[None, :])
    tl.store(out_ptr + o_off, acc.to(out_ptr.dtype.element_ty), mask=mask)


# GPU configs: (BLOCK_M, BLOCK_N, num_warps, num_stages). BLOCK_K comes from the packing.
# num_stages >= 2 feeds the tensor cores with cp.async.cg, which bypasses L1; num_stages 1 uses
# plain loads that L1 caches. Every input pixel is read once per tap (9x here, 81x in the 9x9
# tail), so L1 reuse can beat pipelining: the autotuner decides, per layer and shape.
_GPU_CONFIGS = [
    (64, 64, 4, 4), (128, 64, 4, 4), (128, 64, 8, 3), (256, 64, 8, 3), (128, 64, 4, 1),
    (64, 128, 4, 4), (128, 128, 8, 3), (256, 128, 8, 3), (128, 256, 8, 3),
    (64, 16, 4, 4), (128, 16, 4, 4), (256, 16, 4, 3), (128, 16, 4, 1), (256, 16, 8, 1),
    (128, 32, 4, 4), (256, 32, 8, 3),
]
_SMEM_BYTES = 200 * 1024  # below the H100's 227 KiB, leaving room for the epilogue


def _prune(configs, named_args, **kwargs):
    """Keep configs whose BLOCK_N suits COUT and whose pipeline fits in shared memory."""
    cout_pad, block_k = kwargs["COUT_PAD"], kwargs["BLOCK_K"]
    esize = named_args["w_ptr"].element_size()
    m = named_args["M"]
    keep = []
    for cfg in configs:
        bm, bn = cfg.kwargs["BLOCK_M"], cfg.kwargs["BLOCK_N"]
        if bn > cout_pad or bn < min(cout_pad, 64):
            continue
        if bm > max(64, _next_pow2(m)):
            continue
        if cfg.num_stages * (bm * block_k + block_k * bn) * esize > _SMEM_BYTES:
            continue
        keep.append(cfg)
    return keep or [min(configs, key=lambda c: c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"])]


_KEY = ["M_BUCKET", "CIN", "COUT", "KSIZE", "HAS_PRELU", "HAS_RES", "SHUFFLE", "OUT_MAP"]

if INTERPRET:
    _launch = _conv_kernel
else:
    _launch = triton.autotune(
        configs=[triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
                 for bm, bn, w, s in _GPU_CONFIGS],
        key=_KEY, prune_configs_by={"early_config_prune": _prune},
    )(_conv_kernel)

# The interpreter's fixed config. Its cost is per program and per op, nearly independent of the
# tile size, so the tile is large (tests with more than 128 pixels still cover several programs).
_INTERPRET_BLOCK_M = 128


def _out_shape(x: torch.Tensor, p: PackedConv) -> tuple[int, int, int, int]:
    n, h, w, _ = x.shape
    return (n, 2 * h, 2 * w, p.cout // 4) if p.shuffle else (n, h, w, p.cout)


def kernel_args(x, p: PackedConv, residual, out_map, out) -> tuple[tuple, dict]:
    """The kernel's runtime arguments and constexprs for one call (also used by ``aot_check``)."""
    n, h, w, _ = x.shape
    m = n * h * w
    res = residual if residual is not None else out  # never read when HAS_RES is False
    args = (x, p.weight, p.bias, p.alpha if p.alpha is not None else p.bias, res, out,
            h, w, m, _next_pow2(m), *x.stride(), *res.stride(), *out.stride())
    meta = dict(CIN=p.cin, COUT=p.cout, COUT_PAD=p.weight.shape[1], KSIZE=p.ksize, K_CH=p.k_ch,
                K_ROWS=p.weight.shape[0], FLAT_K=p.flat_k, HAS_PRELU=p.alpha is not None,
                HAS_RES=residual is not None, SHUFFLE=p.shuffle, OUT_MAP=OUT_MAPS[out_map],
                IEEE=p.dtype == torch.float32, BLOCK_K=p.block_k)
    return args, meta


def conv2d_nhwc(x: torch.Tensor, p: PackedConv, residual: torch.Tensor | None = None,
                out_map: str | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Run packed conv ``p`` on ``x`` ([N, H, W, Cin], any strides) with its fused epilogue.

    PReLU runs when ``p.alpha`` is set, the pixel shuffle when ``p.shuffle``; ``residual`` (same
    shape as the output) is added after the PReLU; ``out_map`` ("pm1", "tanh", "unit") maps the
    result to [0, 1] and clamps. ``out`` (any strides, e.g. an NCHW tensor's NHWC permute) is
    written when given, else a new contiguous NHWC tensor of ``p.dtype`` is returned.
    """
    if x.ndim != 4 or x.shape[3] != p.cin:
        raise ValueError(f"expected NHWC input with {p.cin} channels, got shape {tuple(x.shape)}")
    if x.device != p.weight.device:
        raise ValueError(f"input on {x.device}, weights on {p.weight.device}")
    if residual is not None and p.shuffle:
        raise ValueError("a residual add after the pixel shuffle is not supported")
    if out_map not in OUT_MAPS:
        raise ValueError(f"out_map must be one of {list(OUT_MAPS)}, got {out_map!r}")
    shape = _out_shape(x, p)
    if out is None:
        out = torch.empty(shape, device=x.device, dtype=p.dtype)
    elif tuple(out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {shape}")
    if residual is not None and tuple(residual.shape) != shape:
        raise ValueError(f"residual has shape {tuple(residual.shape)}, expected {shape}")
    n, h, w, _ = x.shape
    m = n * h * w
    if m == 0:
        return out
    args, meta = kernel_args(x, p, residual, out_map, out)
    cout = p.cout
    if INTERPRET:
        bn = min(64, p.weight.shape[1])
        grid = (triton.cdiv(m, _INTERPRET_BLOCK_M) * triton.cdiv(cout, bn),)
        _launch[grid](*args, **meta, BLOCK_M=_INTERPRET_BLOCK_M, BLOCK_N=bn)
    else:
        def grid(cfg):
            return (triton.cdiv(m, cfg["BLOCK_M"]) * triton.cdiv(cout, cfg["BLOCK_N"]),)
        _launch[grid](*args, **meta)
    return out


_MAP_FNS = {
    None: lambda t: t,
    "pm1": lambda t: ((t + 1) * 0.5).clamp(0, 1),
    "tanh": lambda t: ((torch.tanh(t) + 1) * 0.5).clamp(0, 1),
    "unit": lambda t: t.clamp(0, 1),
}


def conv2d_nhwc_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                          alpha: torch.Tensor | None = None, residual: torch.Tensor | None = None,
                          shuffle: bool = False, out_map: str | None = None) -> torch.Tensor:
    """What ``conv2d_nhwc`` computes, in plain fp32 PyTorch on NHWC tensors and OIHW weights."""
    xc = x.float().permute(0, 3, 1, 2)
    y = F.conv2d(xc, weight.float(), None if bias is None else bias.float(), padding=weight.shape[-1] // 2)
    if shuffle:
        y = F.pixel_shuffle(y, 2)
    if alpha is not None:
        y = F.prelu(y, alpha.float().reshape(-1))
    if residual is not None:
        y = y + residual.float().permute(0, 3, 1, 2)
    return _MAP_FNS[out_map](y).permute(0, 2, 3, 1)
