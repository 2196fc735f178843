import math

import numpy as np
import pytest
import torch

from srgan_fast.image.read import rgb_to_y
from srgan_fast.image.imresize import imresize, modcrop, resize_matrix
from srgan_fast.eval.metrics import psnr, psnr_y, ssim, ssim_y


def test_psnr_hand_computed():
    a = np.zeros((4, 4))
    b = np.full((4, 4), 2.0)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 4))
    assert psnr(a, a) == math.inf


def test_y_channel_is_bt601_studio_swing():
    rgb = torch.tensor([[[1.0]], [[1.0]], [[1.0]]])
    assert float(rgb_to_y(rgb)) == pytest.approx(235.0)
    assert float(rgb_to_y(torch.zeros(3, 1, 1))) == pytest.approx(16.0)


def test_psnr_y_crops_the_border():
    hr = np.full((16, 16, 3), 100, np.uint8)
    sr = hr.copy()
    sr[:4] = 0  # damage only the border that the paper's convention ignores
    assert psnr_y(sr, hr, border=4) == math.inf
    assert psnr_y(sr, hr, border=0) < 20


def test_ssim_of_constant_images_is_the_luminance_term():
    # With zero variance SSIM reduces to (2 mx my + C1) / (mx^2 + my^2 + C1).
    mx, my, c1 = 100.0, 120.0, (0.01 * 255) ** 2
    a, b = np.full((32, 32), mx), np.full((32, 32), my)
    assert ssim(a, b) == pytest.approx((2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1), rel=1e-9)
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert ssim_y(img, img, border=4) == pytest.approx(1.0)


def test_resize_weights_are_normalised():
    for n_in, n_out, s in [(20, 5, 0.25), (5, 20, 4.0), (7, 2, 0.25)]:
        m = resize_matrix(n_in, n_out, s)
        assert torch.allclose(m.sum(1), torch.ones(n_out, dtype=torch.float64))


def test_imresize_keeps_constants_and_shapes():
    img = np.full((12, 8, 3), 77, np.uint8)
    assert (imresize(img, 0.25) == 77).all()
    assert imresize(img, 4.0).shape == (48, 32, 3)
    assert modcrop(np.zeros((13, 10)), 4).shape == (12, 8)


def test_imresize_matches_matlab_lr_images(shared_data):
    """Our bicubic x1/4 of the HR images reproduces the standard LR files away from the border."""
    from PIL import Image

    for name in ("baby", "butterfly"):
        hr = modcrop(np.asarray(Image.open(shared_data / "Set5" / f"{name}.png").convert("RGB")), 4)
        lr = np.asarray(Image.open(shared_data / "Set5_LRx4" / f"{name}.png").convert("RGB"))
        diff = np.abs(imresize(hr, 0.25).astype(int) - lr.astype(int))[2:-2, 2:-2]
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (diff.max(), (diff > 0).mean())


def test_bicubic_reproduces_the_paper(shared_data):
    from srgan_fast.eval.datasets import load_pairs
    from srgan_fast.eval.evaluate import bicubic, evaluate

    set5 = evaluate(load_pairs(shared_data / "Set5"), bicubic)
    set14 = evaluate(load_pairs(shared_data / "Set14"), bicubic)
    assert set5["psnr_y"] == pytest.approx(28.43, abs=0.05)
    assert set14["psnr_y"] == pytest.approx(25.99, abs=0.15)


def _photo_like(size=192, seed=0):
    """1/f-noise 'photo' (uint8 RGB): the spectrum of natural images, no grid."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(size)
    amp = 1 / np.maximum(np.hypot(*np.meshgrid(f, f)), 1 / size)
    y = np.real(np.fft.ifft2(amp * np.exp(2j * np.pi * rng.random((size, size)))))
    y = 128 + 40 * y / y.std()
    return np.clip(np.stack([y] * 3, -1), 0, 255).round().astype(np.uint8)


def test_grid_amplitude_sees_patterns_locked_to_the_output_grid():
    from srgan_fast.eval.metrics import grid_amplitude

    photo = _photo_like()
    base = grid_amplitude(photo)
    assert base < 0.3  # the photo's own detail leaves a small residue
    yy, xx = np.mgrid[0:192, 0:192]
    for name, pattern in {  # 1.5 grey levels: about what a GAN's grid adds
        "checkerboard": np.where((yy + xx) % 2 == 0, 1.5, -1.5),
        "period-4 hatching": 1.5 * np.cos(np.pi * xx / 2),
        "2x2 blocks, shifted": np.where(((yy + 1) // 2 + (xx + 3) // 2) % 2 == 0, 1.5, -1.5),
    }.items():
        gridded = np.clip(photo + pattern[..., None], 0, 255).round().astype(np.uint8)
        assert grid_amplitude(gridded) > 3 * base, name
    # Detail that is not locked to the grid (noise everywhere) is not a grid.
    noisy = np.clip(photo + np.random.default_rng(1).normal(0, 3, photo.shape[:2])[..., None], 0, 255)
    assert grid_amplitude(noisy.round().astype(np.uint8)) < base + 0.1


def test_grid_amplitude_of_real_photos_is_small(shared_data):
    from PIL import Image

    from srgan_fast.eval.metrics import grid_amplitude

    amps = [grid_amplitude(np.asarray(Image.open(p).convert("RGB"))) for p in sorted((shared_data / "Set14").glob("*.png"))]
    assert float(np.mean(amps)) < 0.2, amps  # measured: 0.137
