"""Measuring quality: ``python -m srgan_fast.evaluate`` and ``python -m srgan_fast.quality``.

``datasets`` (where the SR sets are, LR/HR pairs), ``metrics`` (Y-PSNR, SSIM, texture ratio and
the artefact metrics), ``evaluate`` (the paper's table for a model), ``quality`` (every engine x
precision against the fp32 reference), ``gate`` (the INT8 quality gate the build applies).

May import: the core, ``image`` and the engines facade. Never ``train``, ``build`` (the build
imports ``gate`` and ``datasets`` from here, not the other way), ``video`` or ``jobs``.
"""
