"""The training lab: ``python -m srgan_fast.train`` and ``python -m srgan_fast.interpolate``.

``trainer`` (SRResNet and SRGAN phases, checkpoints, resume), ``losses`` (pixel, VGG54 content,
adversarial), ``data`` (HR crops and their LR), ``interpolate`` (network interpolation).

May import: the core, ``image`` and ``eval`` (validation uses its metrics and datasets). Nothing
at runtime imports the trainer: no engine, build, video or job depends on it.
"""
