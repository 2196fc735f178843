"""NIQE (Mittal, Soundararajan, Bovik, "Making a 'completely blind' image quality analyzer",
IEEE SPL 2013), written to follow the authors' MATLAB release (computequality.m and friends)
step by step, with their pristine model (``niqe_pris_params.npz``; provenance and licence in
NIQE_PROVENANCE.md beside it). It reproduces the MATLAB value BasicSR documents for Set14's
baboon (5.72957338) to 5e-7 (tests/eval/test_niqe.py).

Lower is better. Input is one channel in [0, 255]: in SR work the BT.601 studio Y
(16 + 65.481 R + 128.553 G + 24.966 B, RGB in [0, 1]). The MATLAB release is fed uint8 images,
so Y is rounded before ``niqe`` (``metrics.niqe_y`` does) to reproduce MATLAB / BasicSR numbers.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from scipy.ndimage import correlate
from scipy.special import gamma

from ..image.imresize import imresize

PATCH = 96  # the pristine model was fitted on 96x96 patches; the release advises the same here
_PARAMS = Path(__file__).with_name("niqe_pris_params.npz")
_ZERO_TOL = 1e-8  # |pixel - local mean| below this (in 0..255 units) is rounding residue

# Shape lookup table of estimateaggdparam.m: alpha on the grid 0.2:0.001:10 (9801 values) and
# rho(alpha) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)), the (E|x|)^2 / E[x^2] of a GGD. The
# authors pick the grid point nearest the moment estimate instead of solving the equation;
# we keep that so that alpha is quantized exactly as theirs is.
_ALPHAS = np.linspace(0.2, 10.0, 9801)
_RHO = gamma(2 / _ALPHAS) ** 2 / (gamma(1 / _ALPHAS) * gamma(3 / _ALPHAS))


@functools.lru_cache(maxsize=1)
def load_pristine() -> tuple[np.ndarray, np.ndarray]:
    """(mu (36,), cov (36, 36)): the authors' pristine multivariate Gaussian (modelparameters.mat)."""
    with np.load(_PARAMS) as p:
        mu, cov = p["mu_pris_param"].ravel().copy(), p["cov_pris_param"].copy()
    mu.flags.writeable = cov.flags.writeable = False  # cached and shared: keep it read-only
    return mu, cov


def gaussian_window(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """MATLAB's fspecial('gaussian', size, sigma): a sampled, sum-normalized 2-D Gaussian."""
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def _rms(v: np.ndarray) -> float:
    # sqrt(mean(v.^2)); MATLAB gives NaN for an empty selection (no negative values, say)
    return float(np.sqrt(np.dot(v, v) / v.size)) if v.size else np.nan


def _aggd(x: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric GGD fit by moment matching (estimateaggdparam.m): alpha, beta_left, beta_right."""
    x = x.ravel()
    left, right = _rms(x[x < 0]), _rms(x[x > 0])
    g = left / right
    with np.errstate(invalid="ignore", divide="ignore"):
        rhat = np.mean(np.abs(x)) ** 2 / np.mean(x * x)
    rhat_norm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    # Nearest grid point; a NaN estimate (flat patch) yields the first grid point, as MATLAB's min
    alpha = _ALPHAS[np.argmin((_RHO - rhat_norm) ** 2)]
    k = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left * k, right * k


# Neighbour offsets of computefeature.m (circshift): horizontal, vertical, two diagonals.
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _patch_features(mscn: np.ndarray) -> list[float]:
    """18 features of one patch: GGD of the MSCN coefficients (shape, scale), then for each of
    the 4 neighbour products an AGGD (shape, mean, left scale, right scale)."""
    a, bl, br = _aggd(mscn)
    feat = [a, (bl + br) / 2]
    for shift in _SHIFTS:
        # circular shift inside the patch, exactly like MATLAB's circshift (wraps at the edges)
        a, bl, br = _aggd(mscn * np.roll(mscn, shift, axis=(0, 1)))
        feat += [a, (br - bl) * gamma(2 / a) / gamma(1 / a), bl, br]
    return feat


def _scale_features(img: np.ndarray, patch: int) -> np.ndarray:
    """(n_patches, 18) features of one scale: MSCN normalization, then per-patch features."""
    w = gaussian_window()
    # imfilter(..., 'replicate') == correlate with edge replication ('nearest')
    mu = correlate(img, w, mode="nearest")
    sigma = np.sqrt(np.abs(correlate(img * img, w, mode="nearest") - mu * mu))
    dev = img - mu
    # In a constant 7x7 neighbourhood dev is exactly 0, but the float sum of the window
    # (0.9999999999999999) leaves a ~1e-14 residue whose sign then moves the pixel into the left or
    # right AGGD half; that alone shifts NIQE by ~4e-4. Snap it back to the exact-arithmetic 0
    # (MATLAB's result implies it gets exact zeros). Real deviations are far larger.
    dev[np.abs(dev) < _ZERO_TOL] = 0.0
    mscn = dev / (sigma + 1)  # the +1 keeps flat regions from blowing up
    h, wd = mscn.shape
    return np.array([_patch_features(mscn[r:r + patch, c:c + patch])
                     for r in range(0, h, patch) for c in range(0, wd, patch)])


def niqe(img: np.ndarray, crop_border: int = 4) -> float:
    """NIQE of an HxW image (Y channel, float in [0, 255]); ``crop_border`` pixels are removed
    from each edge first. Needs at least two 96x96 patches after the crop."""
    img = np.asarray(img, dtype=np.float64)  # MATLAB works in double throughout
    if img.ndim != 2:
        raise ValueError(f"niqe expects one HxW channel, got shape {img.shape}")
    if crop_border > 0:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
    # Keep whole patches only (top-left anchored), as computequality.m does; blkproc would
    # otherwise zero-pad partial patches.
    nh, nw = img.shape[0] // PATCH, img.shape[1] // PATCH
    if nh * nw < 2:
        raise ValueError(f"image {img.shape} too small for NIQE: needs two {PATCH}x{PATCH} patches")
    img = img[: nh * PATCH, : nw * PATCH]

    feats = [_scale_features(img, PATCH)]
    # Second scale: MATLAB imresize(im, 0.5) on a double image, i.e. antialiased bicubic and no
    # rounding to integers (rounding would move NIQE by ~1e-2); sizes stay multiples of 48.
    half = imresize(img, scale=0.5)
    feats.append(_scale_features(half, PATCH // 2))
    feat = np.hstack(feats)  # (n_patches, 36); row k is the same patch at both scales

    mu_p, cov_p = load_pristine()
    # nanmean per feature, and nancov, which drops every patch with any NaN feature
    # (flat patches have no negative / positive MSCN values, hence NaN scales).
    mu_d = np.nanmean(feat, axis=0)
    cov_d = np.cov(feat[~np.isnan(feat).any(axis=1)], rowvar=False)
    # Distance of the two Gaussians with the pooled covariance; pinv with MATLAB's default
    # tolerance max(size) * eps * largest singular value.
    pooled = (cov_p + cov_d) / 2
    inv = np.linalg.pinv(pooled, max(pooled.shape) * np.finfo(np.float64).eps)
    d = mu_p - mu_d
    return float(np.sqrt(d @ inv @ d))
