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


def checker_excess(sr_u8: np.ndarray, hr_u8: np.ndarray, border: int = 4) -> float:
    """How much of SR's added detail is pixel-level alternation (GAN checkerboards), relative to
    the real image's: the 2x2 checkerboard filter's energy ratio over the Laplacian's ratio.
    1.0: detail with the HR image's own mix; above 1: period-2 patterns the photo does not have."""
    ys, yh = _crop(_y(sr_u8), border), _crop(_y(hr_u8), border)

    def checker(y):
        return float(np.mean(np.abs(y[:-1, :-1] - y[1:, :-1] - y[:-1, 1:] + y[1:, 1:])))
    tex = texture_ratio(sr_u8, hr_u8, border)
    ref = checker(yh)
    return checker(ys) / ref / tex if ref > 0 and tex > 0 else math.nan
