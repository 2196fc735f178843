"""The grid loss: blind to photo content and to detail that is not locked to the output grid,
sharp on a checkerboard or a period-4 hatching, and differentiable."""
import pytest
import torch

from srgan_fast.train.losses import grid_loss, grid_pattern


def _photo_like(batch=4, size=96, seed=0):
    """1/f noise in [-1, 1]: a natural image's spectrum, no preferred pixel phase."""
    g = torch.Generator().manual_seed(seed)
    f = torch.fft.fftfreq(size)
    amp = 1 / torch.clamp(torch.hypot(f[:, None], f[None, :]), min=1 / size)
    phase = torch.rand(batch, 3, size, size, generator=g) * 2 * torch.pi
    x = torch.fft.ifft2(amp * torch.exp(1j * phase)).real
    return (x / x.std() * 0.3).clamp(-1, 1)


def test_grid_loss_sees_grids_not_content():
    hr = _photo_like()
    assert grid_loss(hr, hr).item() == 0
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    # Changes of the same energy (0.01 on [-1, 1], about 1.3 grey levels RMS): a checkerboard or
    # a period-4 hatching costs far more than noise or a brightness ramp.
    board = torch.where((yy + xx) % 2 == 0, 0.01, -0.01)
    hatch = 0.01 * 2 ** 0.5 * torch.cos(torch.pi * xx / 2)
    noise = 0.01 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(2))
    ramp = 0.01 * 3 ** 0.5 * (2 * xx / 95 - 1)
    for grid in (board, hatch):
        for other in (hr + noise, hr + ramp):
            assert grid_loss(hr + grid, hr).item() > 10 * grid_loss(other, hr).item()


def test_grid_pattern_shape_and_gradient():
    sr = _photo_like(batch=2).requires_grad_(True)
    assert grid_pattern(sr).shape == (2, 3, 16)
    assert grid_pattern(sr).sum(-1).abs().max().item() == pytest.approx(0, abs=1e-6)
    grid_loss(sr, _photo_like(batch=2, seed=3)).backward()
    assert torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0


def test_relativistic_losses_compare_real_with_the_average_fake():
    from srgan_fast.train.losses import d_loss, g_adv_loss

    real, fake = torch.tensor([[4.0], [6.0]]), torch.tensor([[-3.0], [-5.0]])
    # D that separates well: low D loss, high G loss, for both formulations
    for gan in ("bce", "ragan"):
        assert d_loss(real, fake, gan) < 0.05 and g_adv_loss(fake, real, gan) > 3
    # ragan only cares about differences: shifting every logit changes nothing
    assert torch.isclose(d_loss(real + 7, fake + 7, "ragan"), d_loss(real, fake, "ragan"))
    assert not torch.isclose(d_loss(real + 7, fake + 7, "bce"), d_loss(real, fake, "bce"))
    # G's ragan loss gets a gradient through the fake logits only
    f = fake.clone().requires_grad_(True)
    r = real.clone().requires_grad_(True)
    g_adv_loss(f, r, "ragan").backward()
    assert f.grad.abs().sum() > 0 and r.grad is None
