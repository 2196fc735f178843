import pytest
import torch

from srgan_fast.image import tiling
from srgan_fast.engines.torch_engine import TorchEngine
from srgan_fast.errors import SrganError
from srgan_fast.model import Generator
from srgan_fast.parity import assert_close


@pytest.mark.parametrize("shape,tile", [((1, 3, 37, 53), 7), ((2, 3, 20, 31), 16), ((1, 3, 13, 5), 4)])
def test_tiled_equals_whole_frame(tiny_generator, shape, tile):
    engine = TorchEngine(tiny_generator)
    x = torch.rand(shape)
    whole = tiling.upscale(engine, x, tile=0)
    tiled = tiling.upscale(engine, x, tile=tile)
    # Only summation order differs: far below one uint8 step.
    assert_close(tiled, whole, "fp32", atol=1e-5, rtol=0)


def test_tiled_equals_whole_frame_full_model():
    torch.manual_seed(0)
    engine = TorchEngine(Generator())  # B=16: radius 40, so tiles of 8 see 88x88 windows
    x = torch.rand(1, 3, 24, 100)
    assert_close(tiling.upscale(engine, x, tile=8), tiling.upscale(engine, x, tile=0), "fp32", atol=1e-5, rtol=0)


def test_tiles_cover_the_frame_once():
    seen = torch.zeros(23, 17, dtype=torch.int32)
    for (y0, y1, x0, x1), (py0, py1, px0, px1) in tiling.tiles(23, 17, 6, 3):
        seen[y0:y1, x0:x1] += 1
        assert py0 <= y0 and py1 >= y1 and px0 <= x0 and px1 >= x1
        assert y0 - py0 in (0, 3) and px1 - x1 in (0, 3)
    assert bool((seen == 1).all())


def test_auto_tile_follows_budget(tiny_generator):
    engine = TorchEngine(tiny_generator)
    assert tiling.auto_tile(engine, 64, 64, budget=1 << 30) == 0
    side = tiling.auto_tile(engine, 1000, 1000, budget=64 << 20)
    assert 16 <= side < 1000
    assert (side + 2 * engine.radius) ** 2 * engine.bytes_per_lr_pixel <= 64 << 20
    with pytest.raises(SrganError, match="too small"):
        tiling.auto_tile(engine, 1000, 1000, budget=1 << 20)


@pytest.mark.parametrize("budget_mib,fixed_mib", [(64, 0), (512, 0), (512, 300), (96, 40)])
def test_planned_working_set_respects_the_budget(tiny_generator, budget_mib, fixed_mib):
    """What the tiler plans (tile activations and assembly) plus what the job holds elsewhere
    (canvas, encoder) stays within the budget, at every frame size."""
    engine = TorchEngine(tiny_generator)
    for h, w in [(50, 70), (600, 600), (1200, 1200), (3000, 800)]:
        p = tiling.plan(engine, h, w, budget_mib << 20, fixed_mib << 20)
        assert p.total <= tiling.PLANNED_SHARE * (budget_mib << 20)
        assert p.working == tiling.working_set(engine, h, w, p.tile)
        # and it is the largest such tile: one more pixel would not fit
        if p.tile:
            assert tiling.working_set(engine, h, w, p.tile + 1) + (fixed_mib << 20) > \
                tiling.PLANNED_SHARE * (budget_mib << 20) or \
                p.tile + 1 + 2 * engine.radius > max(h, w)
    with pytest.raises(SrganError, match="output and its encoding alone need 600 MiB"):
        tiling.plan(engine, 1000, 1000, 512 << 20, 600 << 20)


def test_budget_tiling_is_exact(tiny_generator):
    engine = TorchEngine(tiny_generator)
    x = torch.rand(1, 3, 60, 64)  # 3840 LR pixels: more than the budget's 44x44 window
    fixed = 3 * 240 * 256 * 4  # tiling.upscale's float result
    budget = int((tiling.working_set(engine, 60, 64, 20) + fixed) / tiling.PLANNED_SHARE) + 1
    assert tiling.auto_tile(engine, 60, 64, budget, fixed=fixed) == 20
    assert_close(tiling.upscale(engine, x, budget=budget), tiling.upscale(engine, x, tile=0), "fp32", atol=1e-5, rtol=0)


def test_default_budget_adds_the_job_and_refuses_what_cannot_fit(tiny_generator, monkeypatch):
    """Without --memory-budget the tiles get the default and the canvas comes on top; a job larger
    than the machine's free memory is an error up front, not a process killed for memory."""
    engine = TorchEngine(tiny_generator)
    monkeypatch.setattr(tiling, "available_memory", lambda: 4 << 30)
    budget = tiling.job_budget(engine, 1 << 30)
    assert budget > 1 << 30 and tiling.plan(engine, 2000, 2000, budget, 1 << 30).total <= budget
    with pytest.raises(SrganError, match="more than the 4.0 GiB"):
        tiling.job_budget(engine, 5 << 30)
    assert tiling.job_budget(engine, 5 << 30, budget=123 << 20) == 123 << 20
