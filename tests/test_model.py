import pytest
import torch

from srgan_fast.errors import SrganError
from srgan_fast.model import (MACS_PER_LR_PIXEL, Discriminator, Generator, count_parameters, flops_per_lr_pixel,
                              fold_bn, receptive_field_radius)
from srgan_fast.parity import assert_close


def test_generator_size_matches_paper():
    g = Generator()
    assert count_parameters(g) == 1_549_462  # "1.55 M" for B=16
    assert flops_per_lr_pixel(g) == MACS_PER_LR_PIXEL == 2_218_176


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (2, 3, 5, 7), (1, 3, 16, 9)])
def test_generator_shapes_and_range(tiny_generator, shape):
    with torch.no_grad():
        out = tiny_generator(torch.rand(shape))
    n, c, h, w = shape
    assert out.shape == (n, 3, 4 * h, 4 * w)
    assert out.min() >= 0 and out.max() <= 1


def test_output_mappings():
    x = torch.randn(1, 3, 2, 2) * 3
    for mapping, expected in [("pm1", (x + 1) / 2), ("tanh", (torch.tanh(x) + 1) / 2), ("unit", x)]:
        g = Generator(num_blocks=1, output_mapping=mapping)
        assert torch.equal(g.map_output(x), expected)
    with pytest.raises(ValueError):
        Generator(output_mapping="sigmoid")


def test_fold_bn_is_equivalent(tiny_generator):
    x = torch.rand(2, 3, 11, 13)
    folded = fold_bn(tiny_generator)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        assert_close(folded(x, raw=True), tiny_generator(x, raw=True), "fp32", atol=1e-4, rtol=1e-4)
    # Folding must not touch the original.
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in tiny_generator.modules())


@pytest.mark.parametrize("blocks", [1, 2])
def test_receptive_field_radius_is_tight(blocks):
    """Gradient support of one output pixel spans exactly the computed radius."""
    torch.manual_seed(blocks)
    g = fold_bn(Generator(num_blocks=blocks))
    r = receptive_field_radius(g)
    assert r == 4 + 2 * blocks + 1 + 1 + 2  # head, blocks, body, 1st up conv, then 2 from the 2x/4x stages
    size = 2 * r + 9
    worst = 0
    for phase in range(4):  # all four sub-pixel phases of the 4x output
        x = torch.rand(1, 3, size, size, requires_grad=True)
        c = size // 2
        g(x, raw=True)[0, :, 4 * c + phase, 4 * c + phase].sum().backward()
        ys, xs = torch.nonzero(x.grad.abs().sum(1)[0], as_tuple=True)
        worst = max(worst, int((ys - c).abs().max()), int((xs - c).abs().max()))
    assert worst == r


@pytest.mark.parametrize("size", [96, 64])
def test_discriminator_logits(size):
    d = Discriminator()
    assert d(torch.rand(2, 3, size, size) * 2 - 1).shape == (2, 1)
