"""PSNR and SSIM as the SR literature reports them (and the paper's Table 2).

Both are computed on the Y channel of BT.601 YCbCr (MATLAB's rgb2ycbcr: 16..235), of uint8
images, after cropping ``border`` pixels (the scale factor, 4) from every edge. SSIM uses
scikit-image with the settings of Wang et al.'s reference code: 11x11 Gaussian window, sigma 1.5,
K1=0.01, K2=0.03, population covariance.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..image.read import rgb_to_y


def _y(img_u8: np.ndarray) -> np.ndarray:
    """uint8 HWC RGB (or HW grey) -> Y in [16, 235] as float64."""
    if img_u8.ndim == 2:
        return 16.0 + img_u8.astype(np.float64) * (219.0 / 255.0)
    rgb = torch.from_numpy(img_u8.astype(np.float64) / 255.0).permute(2, 0, 1)
    return rgb_to_y(rgb).numpy()


def _crop(a: np.ndarray, border: int) -> np.ndarray:
    return a[border:-border, border:-border] if border else a


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)


def psnr_y(sr_u8: np.ndarray, hr_u8: np.ndarray, border: int = 4) -> float:
    return psnr(_crop(_y(sr_u8), border), _crop(_y(hr_u8), border))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(
        a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, K1=0.01, K2=0.03))


def ssim_y(sr_u8: np.ndarray, hr_u8: np.ndarray, border: int = 4) -> float:
    return ssim(_crop(_y(sr_u8), border), _crop(_y(hr_u8), border))


def laplacian(y: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian of a 2-D array (interior pixels)."""
    return 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]


def laplacian_energy(y: np.ndarray) -> float:
    """Mean absolute 4-neighbour Laplacian: how much fine texture an image has."""
    return float(np.mean(np.abs(laplacian(y))))


def texture_ratio(sr_u8: np.ndarray, hr_u8: np.ndarray, border: int = 4) -> float:
    """Texture of SR relative to HR on Y (1.0: as much fine detail as the original; bicubic is
    far below, MSE-trained models about twice bicubic, adversarial training restores more)."""
    ref = laplacian_energy(_crop(_y(hr_u8), border))
    return laplacian_energy(_crop(_y(sr_u8), border)) / ref if ref > 0 else math.nan


# The generator upsamples with two x2 pixel shuffles, so any pattern it adds by itself (GAN
# checkerboards, hatching) is locked to a 2- and 4-pixel period of the output grid.
GRID = 4


def grid_ratio(img_u8: np.ndarray, border: int = 4) -> float:
    """Power at the frequencies locked to the 4-pixel output grid, relative to what their spectral
    neighbourhood predicts: about 1 for a photo, far above 1 for an image carrying a grid.

    The 15 frequencies (a/4, b/4) cycles per pixel (a, b in 0..3, not both 0) hold every pattern
    of period 2 or 4. For each, the power in a 3x3-bin box (the Hann window's main lobe) is
    compared with 9x the mean power of the ring of bins 3..8 away, estimated from the ring's
    median / ln 2 (the median of exponentially distributed periodogram bins) so that an edge or a
    texture in the ring does not raise it. The strongest of the 15 ratios is returned: a
    checkerboard lives at one of them only, and a sum would dilute it.
    """
    y = _crop(_y(img_u8), border)
    h, w = (y.shape[0] // GRID) * GRID, (y.shape[1] // GRID) * GRID
    if min(h, w) < 8 * GRID:
        return math.nan
    y = y[:h, :w] - y[:h, :w].mean()
    power = np.abs(np.fft.fft2(y * np.outer(np.hanning(h), np.hanning(w)))) ** 2
    near, ring = np.arange(-1, 2), np.arange(-8, 9)
    outer = np.maximum.outer(np.abs(ring), np.abs(ring)) >= 3
    worst = 0.0
    for a in range(GRID):
        for b in range(GRID):
            if a == b == 0:
                continue
            fy, fx = a * h // GRID, b * w // GRID
            peak = power[np.ix_((fy + near) % h, (fx + near) % w)].sum()
            expected = 9 * np.median(power[np.ix_((fy + ring) % h, (fx + ring) % w)][outer]) / math.log(2)
            worst = max(worst, peak / expected if expected > 0 else math.inf)
    return float(worst)


def niqe_y(img_u8: np.ndarray, border: int = 4) -> float:
    """NIQE (lower is more natural) of the rounded BT.601 Y, ``border`` pixels cropped, as the SR
    literature (PIRM-SR, BasicSR) and MATLAB compute it; NaN for an image with fewer than two
    96x96 patches (NIQE needs a covariance)."""
    from .niqe import PATCH, niqe

    h, w = (n - 2 * border for n in img_u8.shape[:2])
    if (h // PATCH) * (w // PATCH) < 2:
        return math.nan
    return niqe(np.round(_y(img_u8)), crop_border=border)
