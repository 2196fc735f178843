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
import torch.nn.functional as F

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


def grid_pattern(x: torch.Tensor) -> torch.Tensor:
    """(B, C, 16): the mean of each of the 16 output pixel phases (4x4) over the image, taken on
    its detail layer (x minus its 4x4 box average: the box has zeros at every grid frequency but
    DC, so a grid passes whole while smooth content is removed), minus the mean over phases.

    Natural detail has no preferred phase and averages out; a grid the generator stamps on its
    output does not. ``train.losses.grid_loss`` compares this pattern between SR and HR crops.
    """
    x = x.float()
    box = F.avg_pool2d(F.pad(x, (1, 2, 1, 2), mode="replicate"), GRID, stride=1)
    m = F.pixel_unshuffle(x - box, GRID).mean((-2, -1)).view(x.shape[0], x.shape[1], GRID * GRID)
    return m - m.mean(-1, keepdim=True)


def grid_amplitude(img_u8: np.ndarray, border: int = 4) -> float:
    """RMS amplitude, in grey levels of Y, of the pattern locked to the 4-pixel output grid over
    the whole image (``grid_pattern``). Set14: the HR photos 0.14 (their own detail's residue),
    bicubic 0.02, the SRResNet 0.11, the old 0.4 blend 0.44 (its crosshatch is visible in flat
    areas at 4x contrast). NaN when the image is under 32x32 after the border crop."""
    y = _crop(_y(img_u8), border)
    h, w = (y.shape[0] // GRID) * GRID, (y.shape[1] // GRID) * GRID
    if min(h, w) < 8 * GRID:
        return math.nan
    pattern = grid_pattern(torch.from_numpy(y[:h, :w])[None, None])
    return float(pattern.pow(2).mean().sqrt())


def niqe_y(img_u8: np.ndarray, border: int = 4) -> float:
    """NIQE (lower is more natural) of the rounded BT.601 Y, ``border`` pixels cropped, as the SR
    literature (PIRM-SR, BasicSR) and MATLAB compute it; NaN for an image with fewer than two
    96x96 patches (NIQE needs a covariance)."""
    from .niqe import PATCH, niqe

    h, w = (n - 2 * border for n in img_u8.shape[:2])
    if (h // PATCH) * (w // PATCH) < 2:
        return math.nan
    return niqe(np.round(_y(img_u8)), crop_border=border)
