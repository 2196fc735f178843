"""Golden outputs of the shipped weights: uint8 images compared with atol 1.

Regenerate (only when the shipped weights change on purpose):
    SRGAN_FAST_REGEN_GOLDEN=1 python -m pytest tests/test_golden.py
"""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srgan_fast.checkpoints import MODELS, load_generator
from srgan_fast.engines.torch_engine import TorchEngine
from srgan_fast.image.read import read_image, to_uint8

DATA = Path(__file__).parent / "data"
GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("name", ["baby_lr", "comic_lr"])
def test_shipped_weights_golden(model, name):
    weights = MODELS[model]
    if not weights.is_file():
        pytest.skip(f"shipped {model} weights missing: {weights}")
    engine = TorchEngine(load_generator(weights), precision="fp32")  # the reference, explicitly: not auto
    lr = read_image(DATA / f"{name}.png").rgb[None]
    with torch.no_grad():
        out = to_uint8(engine(lr)[0]).permute(1, 2, 0).numpy()
    # The SRResNet's files keep their original names.
    golden_path = GOLDEN / (f"{name}_x4.png" if model == "srresnet" else f"{name}_{model}_x4.png")
    if os.environ.get("SRGAN_FAST_REGEN_GOLDEN"):
        Image.fromarray(out).save(golden_path)
    golden = np.asarray(Image.open(golden_path))
    assert out.shape == golden.shape
    diff = np.abs(out.astype(int) - golden.astype(int))
    hist = {int(v): int(c) for v, c in zip(*np.unique(diff, return_counts=True))}
    assert diff.max() <= 1, f"max diff {diff.max()} at {np.unravel_index(diff.argmax(), diff.shape)}; histogram {hist}"
