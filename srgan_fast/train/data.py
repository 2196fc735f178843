"""Training data: aligned random HR/LR crops from any folders of images.

Each HR image is cropped to a multiple of 4 and downscaled once with MATLAB-compatible bicubic
(rounded to uint8, like the benchmark LR images); training crops are then cut at aligned
positions from the pair, so no per-crop resampling or border effect enters the inputs.
"""
from __future__ import annotations

import torch

from ..eval.datasets import load_pairs as _load
from ..errors import SrganError
from ..model import SCALE  # the one home of the scale factor


def load_pairs(folders, min_hr: int = 0, progress: bool = False):
    """[(lr uint8 CHW tensor, hr uint8 CHW tensor)] for every image in ``folders`` (bicubic LR:
    training never reads the standard LR files). Pair loading itself is ``datasets.load_pairs``."""
    pairs = []
    for folder in folders:
        pairs += _load(folder, lr="bicubic", min_hr=min_hr, progress=progress, allow_empty=True)
    if not pairs:
        raise SrganError(f"no image in {', '.join(map(str, folders))} is at least {max(min_hr, SCALE)} pixels")
    return [(torch.from_numpy(p.lr).permute(2, 0, 1).contiguous(),
             torch.from_numpy(p.hr).permute(2, 0, 1).contiguous()) for p in pairs]


class PatchSampler:
    """Random aligned crops with random flips and 90-degree rotations, from a seeded generator."""

    def __init__(self, pairs, hr_crop: int = 96, seed: int = 0):
        if hr_crop % SCALE:
            raise SrganError(f"--crop must be a multiple of {SCALE}, got {hr_crop}")
        self.pairs = [p for p in pairs if min(p[1].shape[-2:]) >= hr_crop]
        if not self.pairs:
            raise SrganError(f"no training image is at least {hr_crop}x{hr_crop}")
        self.hr_crop, self.lr_crop = hr_crop, hr_crop // SCALE
        # Pick images in proportion to their area, so every pixel is equally likely.
        self.weights = torch.tensor([float(p[0].shape[-1] * p[0].shape[-2]) for p in self.pairs])
        self.gen = torch.Generator().manual_seed(seed)

    def sample(self, batch: int):
        """(lr, hr) float32 NCHW in [0, 1]."""
        idx = torch.multinomial(self.weights, batch, replacement=True, generator=self.gen)
        lrs, hrs = [], []
        for i in idx.tolist():
            lr, hr = self.pairs[i]
            h, w = lr.shape[-2:]
            y = int(torch.randint(0, h - self.lr_crop + 1, (1,), generator=self.gen))
            x = int(torch.randint(0, w - self.lr_crop + 1, (1,), generator=self.gen))
            lrc = lr[:, y:y + self.lr_crop, x:x + self.lr_crop]
            hrc = hr[:, SCALE * y:SCALE * (y + self.lr_crop), SCALE * x:SCALE * (x + self.lr_crop)]
            flip_h, flip_v, transpose = (torch.rand(3, generator=self.gen) < 0.5).tolist()
            for cond, op in ((flip_h, lambda t: t.flip(-1)), (flip_v, lambda t: t.flip(-2)),
                             (transpose, lambda t: t.transpose(-1, -2))):
                if cond:
                    lrc, hrc = op(lrc), op(hrc)
            lrs.append(lrc)
            hrs.append(hrc)
        return (torch.stack(lrs).float().div_(255.0), torch.stack(hrs).float().div_(255.0))

    def state(self) -> torch.Tensor:
        return self.gen.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.gen.set_state(state)
