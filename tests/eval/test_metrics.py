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


def test_checker_excess_flags_period_two_patterns_not_detail():
    from srgan_fast.eval.metrics import checker_excess

    rng = np.random.default_rng(0)
    # A natural-ish image: smooth gradients plus mid-frequency texture (blurred noise).
    yy, xx = np.mgrid[0:96, 0:96]
    noise = rng.normal(0, 1, (96, 96))
    blurred = (noise + np.roll(noise, 1, 0) + np.roll(noise, 1, 1) + np.roll(noise, (1, 1), (0, 1))) / 4
    base = 120 + 40 * np.sin(xx / 9) + 25 * blurred
    hr = np.clip(np.stack([base] * 3, -1), 0, 255).astype(np.uint8)
    assert checker_excess(hr, hr) == pytest.approx(1.0)
    board = np.where((yy + xx) % 2 == 0, 10, -10)[..., None]
    with_board = np.clip(hr.astype(int) + board, 0, 255).astype(np.uint8)
    assert checker_excess(with_board, hr) > 1.2
    with_detail = np.clip(hr.astype(int) + (8 * blurred)[..., None].astype(int), 0, 255).astype(np.uint8)
    assert checker_excess(with_detail, hr) < 1.1
