"""NIQE: a published MATLAB value, degradation sanity checks, and edge cases.

The data-dependent tests use the Set5/Set14 HR images and skip when they are absent.
"""
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from srgan_fast.eval.niqe import _PARAMS, gaussian_window, imresize, load_pristine, niqe


def y_channel(path):
    """Rounded BT.601 studio Y in [0, 255], as MATLAB's rgb2ycbcr gives for a uint8 image."""
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255
    return np.round(16 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2])


def synthetic(seed=0, size=288):
    """Integer-valued image with texture at several scales and a flat (constant) block."""
    rng = np.random.default_rng(seed)
    img = sum(gaussian_filter(rng.normal(0, 1, (size, size)), s) * s for s in (1, 2, 4, 8))
    img = np.round(np.clip(128 + 40 * img / img.std(), 0, 255))
    img[:110, :110] = 100.0  # covers patch (0, 0) entirely: NaN features, MSCN exactly 0
    return img


def test_pristine_model_and_window():
    mu, cov = load_pristine()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    assert np.allclose(cov, cov.T) and np.linalg.eigvalsh(cov).min() > -1e-10
    # our fspecial('gaussian', 7, 7/6) equals the window BasicSR stored beside the parameters
    with np.load(_PARAMS) as p:
        assert np.abs(gaussian_window() - p["gaussian_window"]).max() < 1e-15


def test_matlab_reference_baboon(shared_data):
    # BasicSR 1.4.2 calculate_niqe docstring: "MATLAB R2021a result for tests/data/baboon.png:
    # 5.72957338" with crop_border=0, Y channel rounded (BasicSR tests/test_niqe.py settings).
    y = y_channel(shared_data / "Set14" / "baboon.png")
    assert y.shape == (480, 500)
    assert abs(niqe(y, crop_border=0) - 5.72957338) < 2e-5


def test_degradations_raise_score(shared_data):
    y = y_channel(shared_data / "Set5" / "baby.png")  # 512x512: 25 patches after the crop
    hr = niqe(y)
    assert 2 < hr < 5
    bicubic = imresize(imresize(y, scale=0.25), size=y.shape)
    noisy = y + np.random.default_rng(0).normal(0, 10, y.shape)
    assert niqe(bicubic) > hr + 2
    assert niqe(noisy) > hr + 2
    assert niqe(gaussian_filter(y, 2)) > hr + 2
    assert abs(niqe(y, crop_border=8) - hr) < 0.2  # a few border pixels barely matter


def test_flat_regions_and_rounding_residue():
    img = synthetic()
    v = niqe(img, crop_border=0)
    assert np.isfinite(v) and v > 0
    # Exact zeros of the MSCN in flat areas must not hinge on 1e-14 float residue: a 1e-10
    # perturbation (far below any real signal) must leave the score unchanged.
    jitter = 1e-10 * np.random.default_rng(1).standard_normal(img.shape)
    assert abs(niqe(img + jitter, crop_border=0) - v) < 1e-9


def test_crop_and_validation():
    img = synthetic(size=300)
    # only whole 96x96 patches are used: pixels beyond 288 (after the crop) are ignored
    assert niqe(img, crop_border=4) == niqe(img[4:292 + 4, 4:292 + 4], crop_border=0)
    with pytest.raises(ValueError):
        niqe(np.zeros((200, 200, 3)))
    with pytest.raises(ValueError):
        niqe(img[:100, :100])  # one patch: no covariance


def test_niqe_y_rounds_the_y_channel_and_refuses_small_images():
    from srgan_fast.eval.metrics import niqe_y

    img = np.stack([synthetic(size=288)] * 3, -1).astype(np.uint8)  # grey: Y = 16 + 219/255 * v
    y = np.round(16 + img[..., 0] * (219 / 255))
    assert niqe_y(img) == niqe(y, crop_border=4)
    assert np.isnan(niqe_y(img[:150, :150]))  # one 96x96 patch after the crop: no covariance
